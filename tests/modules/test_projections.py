"""The durable modules: touchpoint index, search index and context cache, driven by real events."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import Project
from mcp_server.errors import NotFoundError
from mcp_server.events import make_event
from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter


def _save(runtime: Runtime, path: str) -> None:
    runtime.log.append([make_event("file.saved", {"path": path}, source="test")])


def _types(runtime: Runtime, pattern: str) -> list:
    return runtime.log.query(EventFilter(types=(pattern,)), limit=500, descending=False).events


@pytest.fixture
def runtime(project: Project) -> Runtime:
    opened = project.runtime()
    yield opened
    opened.close()


def test_touchpoint_events_on_change(project: Project, runtime: Runtime) -> None:
    project.write("src/a.py", "# @touchpoint alpha first\n# @touchpoint beta\n")
    _save(runtime, "src/a.py")
    runtime.catch_up()

    project.write("src/a.py", "x = 1\n# @touchpoint alpha first\n# @touchpoint gamma\n")
    _save(runtime, "src/a.py")
    runtime.catch_up()

    added = [(e.payload["name"], e.payload["line"]) for e in _types(runtime, "touchpoint.added")]
    removed = [(e.payload["name"], e.payload["line"]) for e in _types(runtime, "touchpoint.removed")]
    updates = _types(runtime, "touchpoint.updated")
    assert added == [("alpha", 1), ("beta", 2), ("gamma", 3)]
    assert removed == [("beta", 2)]
    assert len(updates) == 2
    assert updates[1].payload["added"] == ["gamma"]
    assert updates[1].payload["removed"] == ["beta"]
    moved = updates[1].payload["moved"]
    assert len(moved) == 1
    assert {key: moved[0][key] for key in ("name", "from_line", "to_line", "description")} == {
        "name": "alpha", "from_line": 1, "to_line": 2, "description": "first"
    }
    assert moved[0]["path"] == "src/a.py"
    assert moved[0]["line"] == 2
    assert moved[0]["from_column"] == 3
    assert updates[1].metadata["causation_id"] is not None


def test_unchanged_file_emits_nothing(project: Project, runtime: Runtime) -> None:
    project.write("src/a.py", "# @touchpoint alpha\n")
    _save(runtime, "src/a.py")
    runtime.catch_up()
    count = runtime.log.head()

    _save(runtime, "src/a.py")
    runtime.catch_up()

    assert runtime.log.head() == count + 1


def test_deleted_file_removes_touchpoints(project: Project, runtime: Runtime) -> None:
    path = project.write("src/a.py", "# @touchpoint alpha\n")
    _save(runtime, "src/a.py")
    runtime.catch_up()

    path.unlink()
    runtime.log.append([make_event("code.deleted", {"path": "src/a.py"}, source="test")])

    rows, total = runtime.list_touchpoints()
    assert rows == []
    assert total == 0
    assert [e.payload["name"] for e in _types(runtime, "touchpoint.removed")] == ["alpha"]


def test_path_outside_root_fails_event(project: Project, runtime: Runtime) -> None:
    _save(runtime, "../outside.py")
    runtime.catch_up()

    failures = [event for event in _types(runtime, "event.failed") if event.payload["handler"] == "touchpoints"]
    assert len(failures) == 1
    assert "outside the project root" in failures[0].payload["error"]
    assert failures[0].payload["parked"] is True
    assert [entry["event_type"] for entry in runtime.log.parked("touchpoints")] == ["file.saved"]


def test_skipped_file_recorded(project: Project, runtime: Runtime) -> None:
    project.write("assets/logo.py", b"\x89PNG\r\n\x1a\n\x00\x00# @touchpoint zzz\n")
    _save(runtime, "assets/logo.py")
    runtime.catch_up()

    [skipped] = _types(runtime, "touchpoint.skipped")
    assert skipped.payload == {"path": "assets/logo.py", "reason": "binary"}
    assert runtime.list_touchpoints()[1] == 0


def test_search_follows_index(project: Project, runtime: Runtime) -> None:
    project.write("src/cart.py", "# @touchpoint checkout-total Sums the shopping cart\n")
    project.write("src/pay.py", "# @touchpoint payment-capture Charges the card\n")
    _save(runtime, "src/cart.py")
    _save(runtime, "src/pay.py")

    assert [hit.name for hit in runtime.search_touchpoints("shopping")] == ["checkout-total"]
    assert [hit.name for hit in runtime.search_touchpoints("check")] == ["checkout-total"]
    assert [hit.name for hit in runtime.search_touchpoints("src/pay")] == ["payment-capture"]
    assert runtime.search_touchpoints('"unbalanced AND (') == []

    project.write("src/cart.py", "# nothing here now\n")
    _save(runtime, "src/cart.py")
    assert runtime.search_touchpoints("shopping") == []


def test_context_cache_invalidated_exactly(project: Project, runtime: Runtime) -> None:
    project.write("src/a.py", "# @touchpoint alpha\ndef a():\n    return 1\n")
    project.write("src/other.py", "x = 1\n")
    _save(runtime, "src/a.py")

    first = runtime.get_context("alpha")
    second = runtime.get_context("alpha")
    project.write("src/other.py", "x = 2\n")
    _save(runtime, "src/other.py")
    third = runtime.get_context("alpha")
    project.write("src/a.py", "# @touchpoint alpha\ndef a():\n    return 2\n")
    _save(runtime, "src/a.py")
    fourth = runtime.get_context("alpha")

    assert first["cached"] is False
    assert second["cached"] is True
    assert third["cached"] is True
    assert fourth["cached"] is False
    assert "return 2" in fourth["locations"][0]["code"]
    stats = runtime.context_statistics()
    assert stats["hits"] == 2
    assert stats["misses"] == 2
    assert stats["invalidations"] == 1


def test_context_invalidated_by_new_location(project: Project, runtime: Runtime) -> None:
    project.write("src/a.py", "# @touchpoint alpha\n")
    _save(runtime, "src/a.py")
    assert len(runtime.get_context("alpha")["locations"]) == 1

    project.write("src/b.py", "# @touchpoint alpha\n")
    _save(runtime, "src/b.py")
    answer = runtime.get_context("alpha")

    assert answer["cached"] is False
    assert [location["path"] for location in answer["locations"]] == ["src/a.py", "src/b.py"]


def test_context_unknown_name(runtime: Runtime) -> None:
    with pytest.raises(NotFoundError, match="no touchpoint named 'ghost'"):
        runtime.get_context("ghost")


def _projection_state(database: Path) -> dict[str, list]:
    connection = sqlite3.connect(database)
    try:
        return {
            "touchpoints": connection.execute("SELECT * FROM touchpoints ORDER BY path, line, name").fetchall(),
            "files": connection.execute("SELECT * FROM touchpoint_files ORDER BY path").fetchall(),
            "search": connection.execute("SELECT name, description, path FROM touchpoint_search ORDER BY path, name").fetchall(),
        }
    finally:
        connection.close()


def test_rebuild_equals_incremental(project: Project, runtime: Runtime) -> None:
    for step in range(5):
        project.write(f"src/m{step % 3}.py", f"# @touchpoint tp-{step}\n" + "x = 1\n" * step + "# @touchpoint shared\n")
        _save(runtime, f"src/m{step % 3}.py")
        runtime.catch_up()
    (project.root / "src/m0.py").unlink()
    runtime.log.append([make_event("code.deleted", {"path": "src/m0.py"}, source="test")])
    runtime.catch_up()
    incremental = _projection_state(Path(runtime.log.path))
    head = runtime.log.head()

    assert runtime.rebuild("touchpoints") == ["touchpoints", "search", "context"]

    assert _projection_state(Path(runtime.log.path)) == incremental
    assert incremental["touchpoints"]
    assert runtime.log.head() == head


def test_two_runtimes_apply_once(project: Project) -> None:
    first, second = project.runtime(), project.runtime()
    try:
        for index in range(20):
            project.write(f"src/f{index}.py", f"# @touchpoint tp-{index}\n")
            _save(first, f"src/f{index}.py")
        first.catch_up()
        second.catch_up()

        added = second.log.query(EventFilter(types=("touchpoint.added",))).total
        rows, total = second.list_touchpoints()
    finally:
        first.close()
        second.close()

    assert added == 20
    assert total == 20


def test_context_of_notebook_cell(project: Project, runtime: Runtime) -> None:
    import json

    notebook = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n"]},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": ["# @touchpoint nb-load Loads the data\n", "data = load()\n"]},
    ], "metadata": {"kernelspec": {"language": "python", "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    project.write("nb.ipynb", json.dumps(notebook))
    project.write("src/legacy.py", "# caf\xe9\n# @touchpoint legacy-cafe\n".encode("latin-1"))
    _save(runtime, "nb.ipynb")
    _save(runtime, "src/legacy.py")

    [cell] = runtime.get_context("nb-load")["locations"]
    [legacy] = runtime.get_context("legacy-cafe")["locations"]

    assert cell["cell"] == 1
    assert cell["code"] == "# @touchpoint nb-load Loads the data\ndata = load()"
    assert "café" in legacy["code"]


def test_context_rebuilt_after_edit_outside_hook(project: Project, runtime: Runtime) -> None:
    project.write("src/c.py", "# @touchpoint gamma\ndef c():\n    return 1\n")
    _save(runtime, "src/c.py")
    first = runtime.get_context("gamma")
    second = runtime.get_context("gamma")

    # A different length, so the size changes even where the clock is too coarse to move mtime_ns.
    project.write("src/c.py", "# @touchpoint gamma\ndef c():\n    return 1000\n")
    third = runtime.get_context("gamma")
    fourth = runtime.get_context("gamma")

    assert first["cached"] is False
    assert second["cached"] is True
    assert third["cached"] is False
    assert "return 1000" in third["locations"][0]["code"]
    assert fourth["cached"] is True
    assert "return 1000" in fourth["locations"][0]["code"]
