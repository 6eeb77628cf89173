"""The full index, the configuration part of the cache key, lint findings and symbol bodies in contexts."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from pathlib import Path

from conftest import Project
from mcp_server.events import make_event
from mcp_server.indexer import project_files
from mcp_server.modules.touchpoints import TouchpointIndex, configuration_fingerprint
from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter


@pytest.fixture
def runtime(project: Project) -> Runtime:
    opened = project.runtime()
    yield opened
    opened.close()


def _names(runtime: Runtime) -> list[tuple[str, str, int]]:
    rows, _ = runtime.list_touchpoints()
    return [(row.name, row.path, row.line) for row in rows]


def _index_events(runtime: Runtime) -> list[str]:
    page = runtime.log.query(EventFilter(types=("code.modified", "code.deleted"), source="index"), limit=500)
    return sorted(f"{event.type} {event.payload['path']}" for event in page.events)


def test_index_honours_gitignore(project: Project, runtime: Runtime) -> None:
    project.write(".gitignore", "build/\n")
    project.write("src/a.py", "# @touchpoint alpha\ndef a():\n    pass\n")
    project.write("build/gen.py", "# @touchpoint generated\n")
    project.write("node_modules/x/index.js", "// @touchpoint vendored\n")

    report = runtime.index_project()

    assert _names(runtime) == [("alpha", "src/a.py", 1)]
    assert report.changed == 1
    assert "build/gen.py" not in project_files(str(project.root))


def test_index_walk_without_git(tmp_path: os.PathLike[str]) -> None:
    root = os.path.join(str(tmp_path), "plain")
    for relative in ("src/a.js", "node_modules/b.js", ".venv/c.py", "lib/d.go"):
        os.makedirs(os.path.dirname(os.path.join(root, relative)), exist_ok=True)
        with open(os.path.join(root, relative), "w", encoding="utf-8") as handle:
            handle.write("// x\n")

    assert project_files(root) == ["lib/d.go", "src/a.js"]


def test_second_index_appends_nothing(project: Project, runtime: Runtime) -> None:
    project.write("src/a.py", "# @touchpoint alpha\n")
    runtime.index_project()
    head = runtime.log.head()

    report = runtime.index_project()

    assert report.changed == 0
    assert runtime.log.head() == head


def test_index_records_deleted_file(project: Project, runtime: Runtime) -> None:
    project.write("src/a.py", "# @touchpoint alpha\n")
    project.write("src/b.py", "# @touchpoint beta\n")
    runtime.index_project()
    os.remove(project.root / "src" / "b.py")

    report = runtime.index_project()

    assert report.deleted == 1
    assert _names(runtime) == [("alpha", "src/a.py", 1)]


def test_index_equals_rebuild(project: Project, runtime: Runtime) -> None:
    project.write("src/a.py", "class Cart:\n    # @touchpoint render\n    def render(self):\n        pass\n")
    project.write("src/b.ts", "// @touchpoint total\nexport function total() {}\n")
    runtime.index_project()
    before = runtime.list_touchpoints()[0]

    runtime.rebuild("touchpoints")

    assert runtime.list_touchpoints()[0] == before
    assert [row.symbol for row in before] == ["Cart.render", "total"]


def test_changed_fingerprint_reextracts_only_stale_files(project: Project) -> None:
    project.write("src/a.py", "# @touchpoint alpha\n")
    project.write("src/b.py", "# @touchpoint beta\n")
    first = project.runtime()
    first.index_project()
    # Only b.py carries an old configuration, as if it had been indexed under other limits.
    first.log.connection.execute("UPDATE touchpoint_files SET configuration = 'old' WHERE path = 'src/b.py'")
    first.log.connection.commit()
    first.close()

    second = project.runtime()
    try:
        second.index_project()
        events = _index_events(second)
    finally:
        second.close()

    assert events.count("code.modified src/a.py") == 1
    assert events.count("code.modified src/b.py") == 2


def test_fingerprint_changes_with_limits() -> None:
    assert configuration_fingerprint(max_file_bytes=1) != configuration_fingerprint(max_file_bytes=2)
    assert configuration_fingerprint(symbols=True) != configuration_fingerprint(symbols=False)


def test_apply_skips_unchanged_key(project: Project) -> None:
    project.write("src/a.py", "# @touchpoint alpha\n")
    index = TouchpointIndex(str(project.root), fingerprint="one")
    runtime = project.runtime()
    try:
        connection = runtime.log.connection
        stored = runtime.log.append([make_event("file.saved", {"path": "src/a.py"}, source="test")])[0]
        assert index.apply(connection, stored, index.prepare(stored)) != []
        assert index.apply(connection, stored, index.prepare(stored)) == []
        changed = TouchpointIndex(str(project.root), fingerprint="two")
        assert changed.apply(connection, stored, changed.prepare(stored)) == []  # same rows: nothing to report
        row = connection.execute("SELECT configuration FROM touchpoint_files WHERE path = 'src/a.py'").fetchone()
        assert row[0] == "two"
    finally:
        runtime.close()


def test_events_carry_symbol_and_previous_location(project: Project, runtime: Runtime) -> None:
    project.write("src/a.py", "# @touchpoint alpha\ndef a():\n    pass\n")
    runtime.index_project()
    project.write("src/a.py", "x = 1\n\n# @touchpoint alpha\ndef b():\n    pass\n")
    runtime.index_project()

    added = runtime.log.query(EventFilter(types=("touchpoint.added",)), limit=5).events[0].payload
    update = runtime.log.query(EventFilter(types=("touchpoint.updated",)), limit=1).events[0].payload
    moved = update["moved"][0]

    assert (added["name"], added["path"], added["line"], added["symbol"]) == ("alpha", "src/a.py", 1, "a")
    assert (moved["line"], moved["symbol"]) == (3, "b")
    assert (moved["from_line"], moved["from_symbol"]) == (1, "a")


def test_context_shows_symbol_body(project: Project, runtime: Runtime) -> None:
    body = "\n".join(f"    step_{n} = {n}" for n in range(60))
    project.write("src/a.py", f"# @touchpoint long\ndef long():\n{body}\n    return 0\n\ndef other():\n    pass\n")
    runtime.index_project()

    location = runtime.get_context("long")["locations"][0]

    assert location["symbol"] == "long"
    assert (location["start_line"], location["end_line"]) == (1, 63)
    assert location["code"].endswith("    return 0")
    assert "def other" not in location["code"]


def test_check_reports_each_kind(project: Project) -> None:
    project.write("src/a.py", "# @touchpoint dup\ndef a():\n    pass\n# @touchpoint dup\ndef b():\n    pass\n")
    project.write("src/b.py", "x = 1\n# @touchpoint\n# @touchpoint orphan\n")
    project.write("src/ok.py", "# @touchpoint fine\ndef ok():\n    pass\n")
    runtime = project.runtime()
    runtime.index_project()
    runtime.close()

    result = subprocess.run(
        [sys.executable, "-m", "mcp_server", "touchpoints", "--check", "--project", str(project.root)],
        capture_output=True, text=True, check=False, timeout=60,
    )

    assert result.returncode == 1
    assert "src/a.py:4: duplicate:" in result.stdout
    assert "src/b.py:2: malformed: @touchpoint without a name" in result.stdout
    assert "src/b.py:3: annotates-nothing:" in result.stdout
    assert "src/ok.py" not in result.stdout


def test_check_passes_clean_project(project: Project) -> None:
    project.write("src/ok.py", "# @touchpoint fine\ndef ok():\n    pass\n")

    result = subprocess.run(
        [sys.executable, "-m", "mcp_server", "index", "--project", str(project.root)],
        capture_output=True, text=True, check=False, timeout=60,
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mcp_server", "touchpoints", "--check", "--project", str(project.root)],
        capture_output=True, text=True, check=False, timeout=60,
    )

    assert result.returncode == 0
    assert "indexed" in result.stdout
    assert checked.returncode == 0


def test_index_keeps_binary_and_outside_links(project: Project, tmp_path: Path) -> None:
    project.write("blob.bin", bytes(range(256)) * 20)
    project.run_hook({"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Write",
                      "tool_input": {"file_path": str(project.root / "blob.bin")}, "tool_use_id": "toolu_bin"})
    outside = tmp_path / "outside.py"
    outside.write_text("# @touchpoint outside-secret\n")
    (project.root / "src").mkdir(exist_ok=True)
    (project.root / "src" / "link.py").symlink_to(outside)
    runtime = project.runtime()
    try:
        first = runtime.index_project()
        second = runtime.index_project()
        deleted = runtime.query_events(EventFilter(types=("code.deleted",))).total
        names = [row.name for row in runtime.list_touchpoints()[0]]
    finally:
        runtime.close()

    assert deleted == 0
    assert "outside-secret" not in names
    assert second.changed == 0
    assert first.deleted == 0


def test_index_skips_name_not_utf8(project: Project, runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    root = os.fsencode(project.root)
    with open(os.path.join(root, b"b\xe9.py"), "wb") as handle:
        handle.write(b"# @touchpoint e-tp x\nx = 1\n")
    os.mkdir(os.path.join(root, b"d\xff"))
    with open(os.path.join(root, b"d\xff", b"inner.py"), "wb") as handle:
        handle.write(b"# @touchpoint inner-tp\n")
    project.write("good.py", "# @touchpoint good-tp\n")

    with caplog.at_level("WARNING"):
        report = runtime.index_project()

    assert _names(runtime) == [("good-tp", "good.py", 1)]
    assert report.changed == 1
    assert sorted(path for path, _ in report.unreadable) == ["b\\xe9.py", "d\\xff/inner.py"]
    assert all("not valid UTF-8" in reason for _, reason in report.unreadable)
    assert "b\\xe9.py" in caplog.text


def test_index_skips_name_not_utf8_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with open(os.path.join(os.fsencode(root), b"b\xe9.py"), "wb") as handle:
        handle.write(b"# @touchpoint e-tp x\n")
    (root / "good.py").write_text("# @touchpoint good-tp\n", encoding="utf-8")
    runtime = Runtime(str(root), environ={})
    try:
        report = runtime.index_project()
        names = _names(runtime)
    finally:
        runtime.close()

    assert names == [("good-tp", "good.py", 1)]
    assert [path for path, _ in report.unreadable] == ["b\\xe9.py"]


def test_index_reports_missing_tracked_file_deleted(project: Project, runtime: Runtime) -> None:
    import git

    for number in range(1, 5):
        project.write(f"f{number}.py", f"# @touchpoint f{number}-tp\n")
    repository = git.Repo(project.root)
    repository.index.add([f"f{number}.py" for number in range(1, 5)])
    repository.index.commit("add files")
    runtime.index_project()
    (project.root / "f4.py").unlink()
    # The deletion reaches the index before the full index runs, as the hook or reconcile would record it.
    runtime.log.append([make_event("code.deleted", {"path": "f4.py", "origin": "outside"}, source="test")])
    runtime.catch_up()

    report = runtime.index_project()

    assert report.unreadable == ()
    assert report.deleted == 1
    assert report.changed == 0
    assert [name for name, _, _ in _names(runtime)] == ["f1-tp", "f2-tp", "f3-tp"]


def test_index_skips_fifo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    os.mkfifo(root / "pipe.py")
    (root / "good.py").write_text("# @touchpoint good-tp\n", encoding="utf-8")
    runtime = Runtime(str(root), environ={})
    reports = []
    # Opening a FIFO without a writer blocks, so an index that opened it would never return:
    # the index runs in a thread, and a writer releases it if it is still stuck after a minute.
    worker = threading.Thread(target=lambda: reports.append(runtime.index_project()))
    worker.start()
    worker.join(60)
    stuck = worker.is_alive()
    if stuck:
        with open(root / "pipe.py", "wb"):
            pass
        worker.join()
    try:
        names = _names(runtime)
    finally:
        runtime.close()

    assert not stuck
    assert names == [("good-tp", "good.py", 1)]
    assert reports[0].unreadable == (("pipe.py", "not a regular file (named pipe)"),)
