"""Files changed through Bash become events: reconcile runs real commands in real git repositories."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import git
import pytest
from conftest import Project
from session_support import (
    Session,
    commit_all,
    context_of,
    events,
    saved_paths,
    touchpoints,
)

from mcp_server import clock
from mcp_server.events import make_event
from mcp_server.install import init_project
from mcp_server.runtime import Runtime

UTIL = "def helper():\n    pass\n# @touchpoint old-name\n"


@pytest.fixture
def shop(project: Project) -> Project:
    """The project of the Bash case: util.py committed and indexed, README.md dirty and recorded."""
    project.runtime().close()  # creates .eventsync/.gitignore before anything is committed
    earlier = Session(project, "s-01")
    earlier.edit("src/util.py", UTIL)
    project.write("README.md", "# Shop\n")
    commit_all(project)
    earlier.edit("README.md", "# Shop\n\nUncommitted notes.\n")
    earlier.end()
    return project


def test_bash_edits_recorded(shop: Project) -> None:
    runtime = shop.runtime()
    before = saved_paths(runtime)
    session = Session(shop, "s-02")
    session.start()
    runtime.catch_up()

    session.bash("sed -i 's/old-name/new-name/' src/util.py")
    after_a = saved_paths(runtime)
    tools_a = touchpoints(runtime)
    session.bash("ls -la src")
    after_b = saved_paths(runtime)
    session.bash("printf '# @touchpoint fresh\\n' > notes.py")
    after_c = saved_paths(runtime)
    tools_c = touchpoints(runtime)
    runtime.close()

    assert after_a[len(before):] == [("src/util.py", "Bash")]
    assert ("new-name", "src/util.py", 3) in tools_a
    assert "old-name" not in [name for name, _, _ in tools_a]
    assert after_b == after_a
    assert after_c[len(after_b):] == [("notes.py", "Bash")]
    assert ("fresh", "notes.py", 1) in tools_c
    assert len(after_c) - len(before) == 2


def test_bash_event_fields(shop: Project) -> None:
    session = Session(shop, "s-02")
    session.start()
    session.bash("sed -i 's/old-name/new-name/' src/util.py", duration_ms=40)

    runtime = shop.runtime()
    [command] = events(runtime, "command.executed")
    saved = events(runtime, "file.saved")[-1]
    runtime.close()

    assert command.payload["duration_ms"] == 40
    assert saved.source == "module:reconcile"
    assert saved.payload["tool"] == "Bash"
    assert saved.payload["change"] == "update"
    assert saved.payload["command_id"] == command.id
    assert saved.payload["content_hash"].startswith("sha256:")
    assert saved.metadata["session_id"] == "s-02"
    assert saved.metadata["causation_id"] == command.id


def test_reconcile_precedes_index(shop: Project) -> None:
    runtime = shop.runtime()
    names = [projection.name for projection in runtime.projections]
    Session(shop, "s-02").bash("sed -i 's/old-name/new-name/' src/util.py")

    runtime.catch_up()
    rows, _ = runtime.list_touchpoints(name="new-name")
    runtime.close()

    assert names.index("reconcile") < names.index("touchpoints")
    assert [(row.path, row.line) for row in rows] == [("src/util.py", 3)]


def test_unchanged_dirty_file_not_reported(shop: Project) -> None:
    session = Session(shop, "s-02")
    session.start()
    runtime = shop.runtime()
    before = len(events(runtime, "file.saved"))

    session.bash("touch README.md src/util.py")

    assert len(events(runtime, "file.saved")) == before
    assert events(runtime, "code.modified") == []
    runtime.close()


def test_deletion_and_rename(shop: Project) -> None:
    session = Session(shop, "s-02")
    session.edit("src/gone.py", "x = 1\n")
    session.edit("src/moved.py", "# @touchpoint mover\ny = 2\n")
    commit_all(shop)
    session.start()

    session.bash("rm src/gone.py && mv src/moved.py src/renamed.py")

    runtime = shop.runtime()
    deleted = {event.payload["path"]: event.payload for event in events(runtime, "code.deleted")}
    [refactor] = events(runtime, "refactor.complete")
    new_file = [event.payload for event in events(runtime, "file.saved") if event.payload["path"] == "src/renamed.py"]
    rows = touchpoints(runtime)
    runtime.close()

    assert refactor.payload["renames"] == {"src/moved.py": "src/renamed.py"}
    assert refactor.payload["tool"] == "Bash"
    assert deleted["src/gone.py"]["tool"] == "Bash"
    assert "renamed_to" not in deleted["src/gone.py"]
    assert deleted["src/moved.py"]["renamed_to"] == "src/renamed.py"
    assert [payload["renamed_from"] for payload in new_file] == ["src/moved.py"]
    assert ("mover", "src/renamed.py", 1) in rows
    assert ("mover", "src/moved.py", 1) not in rows


def test_staged_rename_of_unrecorded_file(shop: Project) -> None:
    shop.write("docs/guide.md", "# Guide\n")
    commit_all(shop)
    session = Session(shop, "s-02")
    session.start()

    session.bash("git mv docs/guide.md docs/manual.md")

    runtime = shop.runtime()
    [refactor] = events(runtime, "refactor.complete")
    runtime.close()
    assert refactor.payload["renames"] == {"docs/guide.md": "docs/manual.md"}


def test_change_before_command_is_outside(shop: Project) -> None:
    session = Session(shop, "s-02")
    session.start()
    shop.write("src/util.py", UTIL + "# edited in an editor\n")
    shop.write("out.txt", "data\n")
    runtime = shop.runtime()
    runtime.catch_up()
    # A command that ran for 30 ms and ended 5 s from now started well after both files were written.
    # It rewrote out.txt within its window (see the time set below) and names it as a stale file.
    command = make_event(
        "command.executed", {"command": "make", "duration_ms": 30, "stale_files": ["out.txt"]},
        source="hook", session_id="s-02",
    )
    command["timestamp"] = clock.utc_timestamp(time.time_ns() + 5_000_000_000)
    os.utime(shop.root / "out.txt", ns=(time.time_ns() + 4_500_000_000,) * 2)
    runtime.log.append([command])

    saved = [path for path, tool in saved_paths(runtime) if tool == "Bash"]
    modified = events(runtime, "code.modified")
    runtime.close()
    assert saved == ["out.txt"]
    assert [event.payload["path"] for event in modified] == ["src/util.py"]
    assert modified[0].payload["origin"] == "outside"
    assert modified[0].metadata["session_id"] is None


def test_change_after_hook_left_for_later(shop: Project) -> None:
    session = Session(shop, "s-02")
    session.start()
    session.bash("printf 'one\\n' > first.txt")
    shop.write("later.txt", "written after the hook\n")  # no catch-up has run yet

    runtime = shop.runtime()
    after_command = saved_paths(runtime)
    # The turn ends a second later; its sweep finds what no command wrote.
    stop = make_event("session.turn.ended", {"stop_hook_active": False}, source="hook", session_id="s-02")
    stop["timestamp"] = clock.utc_timestamp(time.time_ns() + 1_000_000_000)
    runtime.log.append([stop])
    modified = [event.payload["path"] for event in events(runtime, "code.modified")]
    runtime.close()

    assert ("later.txt", "Bash") not in after_command
    assert ("first.txt", "Bash") in after_command
    assert modified == ["later.txt"]


def test_checkout_reports_rewritten_files(shop: Project) -> None:
    repo = git.Repo(shop.root)
    repo.git.checkout("-b", "feature")
    shop.write("src/util.py", UTIL.replace("old-name", "feature-name"))
    repo.index.add(["src/util.py"])
    repo.index.commit("feature")
    repo.git.checkout("-")
    session = Session(shop, "s-02")
    session.start()

    session.bash("git checkout feature")

    runtime = shop.runtime()
    bash_saved = [path for path, tool in saved_paths(runtime) if tool == "Bash"]
    names = [name for name, _, _ in touchpoints(runtime)]
    runtime.close()
    assert bash_saved == ["src/util.py"]
    assert "feature-name" in names
    assert "old-name" not in names


def test_concurrent_readers_store_once(shop: Project) -> None:
    Session(shop, "s-02").bash("sed -i 's/old-name/new-name/' src/util.py")
    runtimes = [shop.runtime() for _ in range(3)]
    errors: list[BaseException] = []

    def catch_up(runtime: Runtime) -> None:
        try:
            runtime.catch_up()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=catch_up, args=(runtime,)) for runtime in runtimes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    bash_saved = [path for path, tool in saved_paths(runtimes[0]) if tool == "Bash"]
    for runtime in runtimes:
        runtime.close()
    assert errors == []
    assert bash_saved == ["src/util.py"]


def test_rebuild_replays_without_scanning(shop: Project) -> None:
    session = Session(shop, "s-02")
    session.bash("sed -i 's/old-name/new-name/' src/util.py")
    runtime = shop.runtime()
    runtime.catch_up()
    head = runtime.log.head()

    runtime.rebuild("reconcile")
    after_rebuild = runtime.log.head()
    session.bash("ls")
    runtime.catch_up()
    after_command = [event.type for event in runtime.log.read_after(after_rebuild)]
    runtime.close()

    assert after_rebuild == head
    assert after_command == ["command.executed"]


def test_project_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    init_project(str(root))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    project = Project(root.resolve())
    session = Session(project, "s-plain")
    session.edit("app.py", "x = 1\n")
    project.write("ignored.log", "unrecorded\n")

    subprocess.run("sed -i s/1/2/ app.py; echo more >> ignored.log", shell=True, cwd=root, check=True)
    session.hook(
        "PostToolUse", tool_name="Bash", tool_input={"command": "sed -i s/1/2/ app.py; echo more >> ignored.log"},
        tool_response={"stdout": "", "staleReadFileStateHint": [str(root / "ignored.log")]}, tool_use_id="toolu_plain",
    )

    runtime = project.runtime()
    bash_saved = sorted(path for path, tool in saved_paths(runtime) if tool == "Bash")
    runtime.close()
    assert bash_saved == ["app.py", "ignored.log"]


def test_subfolder_project_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    top = tmp_path / "mono"
    root = top / "services" / "api"
    root.mkdir(parents=True)
    repo = git.Repo.init(top)
    (top / "other.txt").write_text("outside the project\n")
    (root / "main.py").write_text("print(1)\n")
    init_project(str(root))
    repo.git.add("--all")
    repo.index.commit("init")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    project = Project(root.resolve())
    session = Session(project, "s-mono")
    session.start()

    session.bash("sed -i s/1/2/ main.py && echo x >> ../../other.txt")

    runtime = project.runtime()
    bash_saved = [path for path, tool in saved_paths(runtime) if tool == "Bash"]
    runtime.close()
    assert bash_saved == ["main.py"]


def test_replay_sends_no_notices(shop: Project) -> None:
    alice, bob = Session(shop, "s-alice"), Session(shop, "s-bob")
    bob.read("src/util.py")
    runtime = shop.runtime()
    runtime.catch_up()
    alice.bash("sed -i 's/old-name/new-name/' src/util.py")
    runtime.catch_up()
    first = bob.hook("UserPromptSubmit", prompt="next")

    [command] = events(runtime, "command.executed")
    runtime.replay("reconcile", command.position - 1, runtime.log.head())
    second = bob.hook("UserPromptSubmit", prompt="next")
    runtime.close()

    assert "src/util.py changed by session s-alice (Bash)" in context_of(first)
    assert second.stdout == b""


def test_file_name_not_utf8_skipped(shop: Project, caplog: pytest.LogCaptureFixture) -> None:
    bad_folder = os.path.join(os.fsencode(shop.root), b"caf\xe9")
    os.mkdir(bad_folder)
    with open(os.path.join(bad_folder, b"x.py"), "wb") as handle:
        handle.write(b"# @touchpoint hidden-tp\n")
    with open(os.path.join(os.fsencode(shop.root), b"b\xe9.py"), "wb") as handle:
        handle.write(b"# @touchpoint e-tp x\nx = 1\n")
    runtime = shop.runtime()
    before = saved_paths(runtime)
    session = Session(shop, "s-02")
    session.start()

    # File times come from the kernel's coarse clock, so a file written within one clock tick
    # after a hook can look older than it. Catching up between commands, as the server's
    # tailer does, keeps each change with its own command.
    with caplog.at_level("WARNING"):
        session.bash("sed -i 's/old-name/new-name/' src/util.py")
        runtime.catch_up()
        session.bash("printf '# @touchpoint fresh\\n' > notes.py")
        after = saved_paths(runtime)
    parked = runtime.log.parked()
    names = touchpoints(runtime)
    runtime.close()

    assert parked == []
    assert after[len(before):] == [("src/util.py", "Bash"), ("notes.py", "Bash")]
    assert ("fresh", "notes.py", 1) in names
    assert "e-tp" not in [name for name, _, _ in names]
    assert "b\\xe9.py" in caplog.text
    assert "not valid UTF-8" in caplog.text


def test_first_command_without_start_claims_nothing(project: Project) -> None:
    # The hook was installed mid-session: no SessionStart came, and Claude Code before 2.1.119 sends no duration,
    # so the command's start time is unknown.
    project.write("src/a.py", "x = 1\n")

    Session(project, "s-mid").bash("ls")

    runtime = project.runtime()
    saved = saved_paths(runtime)
    modified = events(runtime, "code.modified")
    runtime.close()
    assert saved == []
    assert sorted(event.payload["path"] for event in modified) == [".claude/settings.json", ".mcp.json", "src/a.py"]
    assert {event.payload["origin"] for event in modified} == {"outside"}
