"""Search over touchpoints: the bounded ranking of queries with many hits, and the FTS5 row bookkeeping."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from conftest import Project
from mcp_server.modules.search import SearchIndex, _rank_all
from mcp_server.runtime import Runtime
from mcp_server.store.sqlite import fts_query

_WORDS = ("cart", "invoice", "refund", "shipping", "payment", "retry", "webhook", "tax")


@pytest.fixture
def runtime(project: Project) -> Runtime:
    opened = project.runtime()
    yield opened
    opened.close()


def _write_modules(project: Project, files: int, per_file: int) -> None:
    """Write files whose touchpoints share words in varied combinations, so hit counts and scores differ."""
    for number in range(files):
        lines = []
        for block in range(per_file):
            first, second = _WORDS[(number + block) % len(_WORDS)], _WORDS[(number * 3 + block) % len(_WORDS)]
            extra = " extra words here" * (block % 3)
            lines.append(f"# @touchpoint {first}-{number}-{block} handles {second} and {first}{extra}")
            lines.append(f"def step_{block}():")
            lines.append("    return 1")
        project.write(f"src/group{number % 3}/module_{number}.py", "\n".join(lines) + "\n")


def _search_rows(connection: sqlite3.Connection) -> list[tuple[object, ...]]:
    return connection.execute(
        "SELECT rowid, name, path, line FROM touchpoint_search ORDER BY rowid"
    ).fetchall()


QUERIES = ("cart", "invoice refund", "handles", "src", "group1 tax", "ship", "webhook-3", "h", "zzz")


@pytest.mark.parametrize("text", QUERIES)
def test_small_queries_keep_full_ranking(project: Project, runtime: Runtime, text: str) -> None:
    _write_modules(project, files=12, per_file=8)
    runtime.index_project()
    connection = runtime.log.connection

    assert SearchIndex.search(connection, text, limit=10) == _rank_all(connection, fts_query(text), 10)


@pytest.mark.parametrize("text", QUERIES)
def test_bounded_ranking_all_hits_exact(project: Project, runtime: Runtime, text: str) -> None:
    _write_modules(project, files=12, per_file=8)
    runtime.index_project()
    connection = runtime.log.connection

    # More candidates than rows: the bounded path ranks every hit, so it must equal the full ranking.
    bounded = SearchIndex.search(connection, text, limit=10, exact_limit=0, candidates=1000)

    assert bounded == _rank_all(connection, fts_query(text), 10)


def test_bounded_ranking_prefers_name_matches(project: Project, runtime: Runtime) -> None:
    for number in range(30):
        project.write(f"src/billing/part_{number:02}.py", f"# @touchpoint part-{number} computes one total\n")
    project.write("src/zz_last.py", "# @touchpoint billing-summary computes the grand total\n")
    runtime.index_project()
    connection = runtime.log.connection
    full = _rank_all(connection, fts_query("billing"), 3)

    bounded = SearchIndex.search(connection, "billing", limit=3, exact_limit=5, candidates=4)

    assert [hit.name for hit in bounded][0] == "billing-summary"
    assert full[0] == bounded[0]
    assert len(bounded) == 3
    full_scores = {(hit.path, hit.line): hit.score for hit in _rank_all(connection, fts_query("billing"), 100)}
    assert all(hit.score == full_scores[(hit.path, hit.line)] for hit in bounded)


def test_limit_above_candidates_ranks_all(project: Project, runtime: Runtime) -> None:
    _write_modules(project, files=6, per_file=5)
    runtime.index_project()
    connection = runtime.log.connection

    hits = SearchIndex.search(connection, "handles", limit=25, exact_limit=2, candidates=10)

    assert hits == _rank_all(connection, fts_query("handles"), 25)


def test_search_rows_follow_edits(project: Project, runtime: Runtime) -> None:
    project.write("src/a.py", "# @touchpoint alpha first\n# @touchpoint beta second\n")
    project.write("src/b.py", "# @touchpoint gamma third\n")
    runtime.index_project()
    project.write("src/a.py", "# @touchpoint alpha first\n")
    project.write("src/b.py", "# @touchpoint gamma third\n# @touchpoint delta fourth\n# @touchpoint epsilon\n")
    runtime.index_project()
    (project.root / "src" / "a.py").unlink()
    runtime.index_project()
    connection = runtime.log.connection

    rows = _search_rows(connection)
    listed = connection.execute("SELECT id, path FROM touchpoint_search_rows ORDER BY id").fetchall()

    assert [(name, path, line) for _, name, path, line in rows] == [
        ("gamma", "src/b.py", 1), ("delta", "src/b.py", 2), ("epsilon", "src/b.py", 3),
    ]
    assert [(rowid, path) for rowid, _, path, _ in rows] == listed
    assert [hit.name for hit in runtime.search_touchpoints("alpha")] == []
    assert [hit.name for hit in runtime.search_touchpoints("fourth")] == ["delta"]


def _write_carts(project: Project, files: int, per_file: int) -> None:
    """Write ``files * per_file`` touchpoints named ``cart-F-I``, then one named ``cart`` in the last file indexed."""
    for number in range(files):
        lines = [f"# @touchpoint cart-{number}-{index} handles the cart line {index}\n" for index in range(per_file)]
        project.write(f"src/cart_{number:02}.py", "".join(lines))
    project.write("src/zz.py", "# @touchpoint cart\ndef cart():\n    return 1\n")


def test_bounded_ranking_keeps_exact_name(project: Project, runtime: Runtime) -> None:
    _write_carts(project, files=30, per_file=100)
    runtime.index_project()

    hits = runtime.search_touchpoints("cart", limit=100)

    assert len(hits) == 100
    assert hits[0].name == "cart"
    assert hits[0].path == "src/zz.py"
    assert hits.note is not None
    assert "refine the query" in hits.note


def test_exact_name_ignores_case(project: Project, runtime: Runtime) -> None:
    _write_carts(project, files=3, per_file=10)
    runtime.index_project()
    connection = runtime.log.connection

    hits = SearchIndex.search(connection, "CART", limit=5, exact_limit=5, candidates=4)

    assert hits[0].name == "cart"


def test_bounded_ranking_prefers_fewer_name_words(project: Project, runtime: Runtime) -> None:
    long_names = "".join(f"# @touchpoint cart-with-a-long-name-{index} one cart\n" for index in range(10))
    project.write("src/a_long.py", long_names)
    project.write("src/b_short.py", "".join(f"# @touchpoint cart-{index} one cart\n" for index in range(4)))
    runtime.index_project()
    connection = runtime.log.connection

    bounded = SearchIndex.search(connection, "cart", limit=4, exact_limit=5, candidates=4)

    assert {hit.name for hit in bounded} == {"cart-0", "cart-1", "cart-2", "cart-3"}
    assert bounded == _rank_all(connection, fts_query("cart"), 4)


def test_note_only_for_bounded_ranking(project: Project, runtime: Runtime) -> None:
    _write_modules(project, files=6, per_file=5)
    runtime.index_project()
    connection = runtime.log.connection

    full = SearchIndex.search(connection, "handles", limit=10)
    bounded = SearchIndex.search(connection, "handles", limit=10, exact_limit=5, candidates=10)

    assert full.note is None
    assert bounded.note is not None
    assert "more than 5 touchpoints" in bounded.note
    assert "only 10 of them were ranked" in bounded.note


def test_cli_shows_bounded_note(project: Project, runtime: Runtime) -> None:
    _write_carts(project, files=30, per_file=100)
    runtime.index_project()

    searched = subprocess.run(
        [sys.executable, "-m", "mcp_server", "search", "cart", "--limit", "100", "--json"], capture_output=True,
        text=True, timeout=60, check=False, cwd=project.root,
        env={**os.environ, "CLAUDE_PROJECT_DIR": str(project.root)},
    )

    assert searched.returncode == 0, searched.stderr
    assert json.loads(searched.stdout)[0]["name"] == "cart"
    assert "refine the query" in searched.stderr


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tool_shows_bounded_note(project: Project, runtime: Runtime, anyio_backend: str) -> None:
    _write_carts(project, files=30, per_file=100)
    runtime.index_project()
    runtime.close()
    tests = Path(__file__).resolve().parents[1]
    parameters = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server", "serve"], cwd=str(project.root),
        env={"CLAUDE_PROJECT_DIR": str(project.root), "PYTHONPATH": str(tests),
             "XDG_STATE_HOME": os.environ.get("XDG_STATE_HOME", "")},
    )

    async with Client(parameters, mode="legacy") as client:
        result = await client.call_tool("search_touchpoints", {"query": "cart", "limit": 100})

    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["hits"][0]["name"] == "cart"
    assert "refine the query" in result.structured_content["note"]
