"""The full index through the MCP server: the index_project tool and the automatic index at start-up.

The projects here hold files committed to git and never saved through the
capture hook, so every touchpoint the server returns comes from the full index.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import git
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from conftest import Project
from mcp_server.indexer import project_files

pytestmark = pytest.mark.anyio

TESTS = Path(__file__).resolve().parents[1]

COMMITTED = {
    "src/shop.py": "# @touchpoint checkout-total Sums the cart\ndef total(cart):\n    return sum(cart)\n",
    "web/cart.ts": "// @touchpoint cart-render Draws the cart\nexport function render(): void {}\n",
    "src/plain.py": "def helper():\n    return 1\n",
}
EXPECTED = [("cart-render", "web/cart.ts", 1), ("checkout-total", "src/shop.py", 1)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def committed(project: Project) -> Project:
    """The project with three committed source files and one git-ignored file that contains a marker."""
    for path, text in COMMITTED.items():
        project.write(path, text)
    project.write(".gitignore", "build/\n")
    project.write("build/generated.py", "# @touchpoint ignored-marker Must not be indexed\n")
    repository = git.Repo(project.root)
    repository.index.add([*COMMITTED, ".gitignore"])
    repository.index.commit("add sources")
    return project


@asynccontextmanager
async def _client(project: Project, *, auto_index: bool) -> AsyncIterator[Client]:
    env = {"CLAUDE_PROJECT_DIR": str(project.root), "PYTHONPATH": str(TESTS), "EVENTSYNC_DEBUG": "1",
           "XDG_STATE_HOME": os.environ.get("XDG_STATE_HOME", "")}
    if not auto_index:
        env["EVENTSYNC_AUTO_INDEX"] = "0"
    parameters = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server", "serve"], env=env, cwd=str(project.root)
    )
    async with Client(parameters, mode="legacy") as client:
        yield client


async def _call(client: Client, tool: str, arguments: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments or {}, **options)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def _locations(listing: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(t["name"], t["path"], t["line"]) for t in listing["touchpoints"]]


async def test_index_tool_reports_progress(committed: Project) -> None:
    updates: list[tuple[float, float | None, str | None]] = []
    finished = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))
        if message == "indexing" and total is not None and progress >= total:
            finished.set()

    with anyio.fail_after(60):
        async with _client(committed, auto_index=False) as client:
            before = await _call(client, "list_touchpoints")
            report = await _call(client, "index_project", progress_callback=on_progress)
            with anyio.fail_after(10):
                await finished.wait()
            after = await _call(client, "list_touchpoints")
            ignored = await _call(client, "list_touchpoints", {"file": "build/generated.py"})
            modified = await _call(client, "query_events", {"type": "code.modified"})
            saved = await _call(client, "query_events", {"type": "file.saved"})

    assert before["total"] == 0
    # The count includes the files `init` wrote (.mcp.json, .claude/settings.json) and .gitignore.
    assert report["files"] == len(project_files(str(committed.root)))
    assert "build/generated.py" not in project_files(str(committed.root))
    assert report["changed"] == 2
    assert report["deleted"] == 0
    assert report["unreadable"] == []
    assert _locations(after) == EXPECTED
    assert ignored["total"] == 0
    assert saved["total"] == 0
    assert modified["total"] == 2
    assert {event["payload"]["origin"] for event in modified["events"]} == {"index"}
    assert len(updates) >= 2
    progress_values = [progress for progress, _, _ in updates]
    assert progress_values == sorted(set(progress_values)), updates
    assert all(total is not None and progress <= total for progress, total, _ in updates), updates
    assert updates[0][2] == "reading files"
    assert updates[-1] == (report["files"] + 2, report["files"] + 2, "indexing")


async def test_startup_indexes_empty_index(committed: Project) -> None:
    with anyio.fail_after(60):
        async with _client(committed, auto_index=True) as client:
            with anyio.fail_after(30):
                while (listing := await _call(client, "list_touchpoints"))["total"] < len(EXPECTED):
                    await anyio.sleep(0.05)
            search = await _call(client, "search_touchpoints", {"query": "cart"})
            saved = await _call(client, "query_events", {"type": "file.saved"})
            modified = await _call(client, "query_events", {"type": "code.modified"})

    assert _locations(listing) == EXPECTED
    assert sorted(hit["name"] for hit in search["hits"]) == ["cart-render", "checkout-total"]
    assert saved["total"] == 0
    assert modified["total"] == 2
    assert {event["payload"]["origin"] for event in modified["events"]} == {"index"}


async def test_startup_index_disabled(committed: Project) -> None:
    with anyio.fail_after(60):
        async with _client(committed, auto_index=False) as client:
            listing = await _call(client, "list_touchpoints")
            report = await _call(client, "index_project")
            modified = await _call(client, "query_events", {"type": "code.modified"})

    assert listing["total"] == 0
    # Had the server indexed at start-up, the tool would find nothing stale, or both
    # indexes would have appended an event per file.
    assert report["changed"] == 2
    assert modified["total"] == 2


async def test_file_name_not_utf8_keeps_server_up(committed: Project) -> None:
    root = os.fsencode(committed.root)
    with open(os.path.join(root, b"b\xe9.py"), "wb") as handle:
        handle.write(b"# @touchpoint e-tp x\nx = 1\n")
    os.mkdir(os.path.join(root, b"untracked-\xff"))
    with open(os.path.join(root, b"untracked-\xff", b"more.py"), "wb") as handle:
        handle.write(b"# @touchpoint more-tp\n")

    with anyio.fail_after(60):
        async with _client(committed, auto_index=True) as client:
            with anyio.fail_after(30):
                while (listing := await _call(client, "list_touchpoints"))["total"] < len(EXPECTED):
                    await anyio.sleep(0.05)
            report = await _call(client, "index_project")
            emitted = await _call(client, "emit_event", {"type": "note.added", "payload": {"text": "still up"}})
            stats = await _call(client, "log_stats")

    assert _locations(listing) == EXPECTED
    assert sorted(entry["path"] for entry in report["unreadable"]) == ["b\\xe9.py", "untracked-\\xff/more.py"]
    assert emitted["stored"]
    assert stats["parked_events"] == 0


async def test_startup_index_failure_keeps_server_up(committed: Project) -> None:
    marker = committed.root / "index-attempted"
    parameters = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server", "serve"], cwd=str(committed.root),
        env={"CLAUDE_PROJECT_DIR": str(committed.root), "PYTHONPATH": str(TESTS),
             "XDG_STATE_HOME": os.environ.get("XDG_STATE_HOME", ""), "EVENTSYNC_MODULES": "support_modules:failing_index"},
    )

    with anyio.fail_after(60):
        async with Client(parameters, mode="legacy") as client:
            with anyio.fail_after(30):
                while not marker.exists():
                    await anyio.sleep(0.05)
            await anyio.sleep(0.5)
            listing = await _call(client, "list_touchpoints")
            emitted = await _call(client, "emit_event", {"type": "note.added", "payload": {"text": "still up"}})

    assert listing["total"] == 0
    assert emitted["stored"]


async def test_first_call_waits_for_startup_index(project: Project) -> None:
    # Enough files that the start-up index is still running when the first call arrives.
    for number in range(300):
        project.write(f"src/m{number:03d}.py", f"# @touchpoint mark-{number}\nvalue = {number}\n")

    with anyio.fail_after(120):
        async with _client(project, auto_index=True) as client:
            first = await _call(client, "list_touchpoints", {"limit": 1000})
            search = await _call(client, "search_touchpoints", {"query": "mark"})

    note = first.get("note") or ""
    assert first["total"] == 300 or "still indexing" in note, (first["total"], note)
    assert search["hits"]
