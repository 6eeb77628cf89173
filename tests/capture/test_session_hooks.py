"""Session hook events, FileChanged and the start-up sweep, through the real hook command."""

from __future__ import annotations

import json
import time

from conftest import Project
from session_support import Session, commit_all, events, hook_output, saved_paths, touchpoints

from mcp_server import clock
from mcp_server.events import make_event


def test_session_lifecycle_events(project: Project) -> None:
    session = Session(project, "s-life")

    start = session.start()
    session.start()  # the same hook configured twice (plugin and project settings)
    end = session.end("prompt_input_exit")

    runtime = project.runtime()
    [started] = events(runtime, "session.started")
    [ended] = events(runtime, "session.ended")
    runtime.close()
    assert start.stdout == b""
    assert end.stdout == b""
    assert started.payload["source"] == "startup"
    assert started.metadata["session_id"] == "s-life"
    assert ended.payload["reason"] == "prompt_input_exit"


def test_stop_summarises_turn(project: Project) -> None:
    project.runtime().close()
    commit_all(project)
    session = Session(project, "s-turn")
    session.start()
    session.edit("src/a.py", "# @touchpoint a\n")
    session.bash("printf 'b = 1\\n' > b.py && printf 'c = 1\\n' > c.py")
    session.bash("ls")

    stop = session.stop("Created b.py and c.py.")
    session.edit("src/a.py", "# @touchpoint a\nx = 2\n")
    session.stop("Set x.")
    session.stop("Set x.")  # the same Stop delivered by a second copy of the hook

    runtime = project.runtime()
    first, second = (event.payload for event in events(runtime, "session.turn.completed"))
    runtime.close()
    assert stop.stdout == b""
    assert first["turn"] == 1
    assert first["files_saved"] == 3
    assert first["saved_paths"] == ["b.py", "c.py", "src/a.py"]
    assert first["commands"] == 2
    assert first["files_deleted"] == 0
    assert first["outside_changes"] == 0
    assert second["turn"] == 2
    assert second["files_saved"] == 1
    assert second["commands"] == 0


def test_sweep_at_start_finds_outside_changes(project: Project) -> None:
    project.runtime().close()
    earlier = Session(project, "s-before")
    earlier.edit("src/kept.py", "# @touchpoint kept\n")
    earlier.edit("src/dropped.py", "# @touchpoint dropped\n")
    commit_all(project)
    earlier.end()
    runtime = project.runtime()
    runtime.catch_up()

    project.write("src/kept.py", "# @touchpoint kept-renamed\n")  # an editor, while no session runs
    (project.root / "src" / "dropped.py").unlink()
    # The next session starts a second later: a sweep leaves changes of its last 50 ms to later scans.
    started = make_event("session.started", {"source": "startup"}, source="hook", session_id="s-after")
    started["timestamp"] = clock.utc_timestamp(time.time_ns() + 1_000_000_000)
    runtime.log.append([started])

    modified = events(runtime, "code.modified")
    deleted = events(runtime, "code.deleted")
    names = [name for name, _, _ in touchpoints(runtime)]
    saved = saved_paths(runtime)
    runtime.close()
    assert [(event.payload["path"], event.payload["origin"]) for event in modified] == [("src/kept.py", "outside")]
    assert modified[0].payload["detected_by"] == "session.started"
    assert modified[0].metadata["session_id"] is None
    assert [event.payload["path"] for event in deleted] == ["src/dropped.py"]
    assert sorted(names) == ["kept-renamed"]
    assert all(tool != "Bash" for _, tool in saved)


def test_start_returns_watch_paths(project: Project) -> None:
    first = Session(project, "s-first").start()
    Session(project, "s-first").edit("src/a.py", "# @touchpoint a\n")
    Session(project, "s-first").edit("src/plain.py", "x = 1\n")
    runtime = project.runtime()
    runtime.catch_up()
    runtime.close()

    second = Session(project, "s-second").start()

    assert first.stdout == b""
    output = hook_output(second)
    assert output == {
        "hookSpecificOutput": {"hookEventName": "SessionStart", "watchPaths": [str(project.root / "src" / "a.py")]}
    }
    assert second.stdout.count(b"\n") == 0


def test_watch_paths_complete_after_burst(project: Project) -> None:
    # Indexing changes the watch list once per file, far more often than the list may be rewritten per second.
    expected = []
    for number in range(30):
        project.write(f"src/m{number:02d}.py", f"# @touchpoint mark-{number}\nvalue = {number}\n")
        expected.append(str(project.root / "src" / f"m{number:02d}.py"))
    runtime = project.runtime()
    runtime.index_project()
    runtime.close()

    start = Session(project, "s-burst").start()

    output = hook_output(start)
    assert output is not None
    assert sorted(output["hookSpecificOutput"]["watchPaths"]) == expected


def test_file_changed_events(project: Project) -> None:
    project.write("src/w.py", "# @touchpoint watched\n")
    watchers = [Session(project, "s-w1"), Session(project, "s-w2")]

    for watcher in watchers:  # both sessions watch the file; an editor changed it once
        run = watcher.hook("FileChanged", file_path=str(project.root / "src" / "w.py"), event="change")
        assert run.stdout == b""
    (project.root / "src" / "w.py").unlink()
    for watcher in watchers:
        watcher.hook("FileChanged", file_path=str(project.root / "src" / "w.py"), event="unlink")

    runtime = project.runtime()
    [modified] = events(runtime, "code.modified")
    [deleted] = events(runtime, "code.deleted")
    rows = touchpoints(runtime)
    runtime.close()
    assert modified.payload["origin"] == "FileChanged"
    assert modified.payload["observed_by"] == "s-w1"
    assert modified.metadata["session_id"] is None
    assert modified.payload["content_hash"].startswith("sha256:")
    assert deleted.payload["path"] == "src/w.py"
    assert rows == []


def test_file_changed_indexes_touchpoints(project: Project) -> None:
    project.write("src/w.py", "# @touchpoint watched\n")

    Session(project, "s-w").hook("FileChanged", file_path=str(project.root / "src" / "w.py"), event="add")

    runtime = project.runtime()
    rows = touchpoints(runtime)
    runtime.close()
    assert rows == [("watched", "src/w.py", 1)]


def test_prompt_and_read_events(project: Project) -> None:
    project.write("src/r.py", "x = 1\n")
    session = Session(project, "s-read")

    prompt = session.hook("UserPromptSubmit", prompt="rename the helper")
    read = session.read("src/r.py")
    outside = session.hook("PostToolUse", tool_name="Read", tool_input={"file_path": "/etc/hostname"},
                           tool_response={}, tool_use_id="toolu_outside")

    runtime = project.runtime()
    reads = events(runtime, "file.read")
    everything = events(runtime, ">")
    runtime.close()
    assert prompt.stdout == b""
    assert read.stdout == b""
    assert outside.stdout == b""
    assert [event.payload["path"] for event in reads] == ["src/r.py"]
    assert "rename the helper" not in json.dumps([event.to_dict() for event in everything])
