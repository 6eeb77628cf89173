"""The capture hook, run exactly as ``.claude/settings.json`` configures it."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Project, load_fixture
from mcp_server.store.base import EventFilter

RECORDED_ROOTS = {"hook-payloads": "/home/dev/project", "observed-payloads": "/tmp/e2e-proj"}

# (fixture, file.saved events, command.executed events)
FIXTURE_EXPECTATIONS = [
    ("hook-payloads/posttooluse-write-create.json", 1, 0),
    ("hook-payloads/posttooluse-write-update.json", 1, 0),
    ("hook-payloads/posttooluse-edit.json", 1, 0),
    ("hook-payloads/posttooluse-multiedit-legacy-2025.json", 1, 0),
    ("hook-payloads/posttooluse-notebookedit.assembled.json", 1, 0),
    ("hook-payloads/posttooluse-bash.json", 0, 1),
    ("hook-payloads/posttooluse-read.json", 0, 0),
    ("hook-payloads/posttoolusefailure-bash.json", 0, 0),
    ("hook-payloads/pretooluse-write.json", 0, 0),
    ("hook-payloads/pretooluse-bash-subagent.json", 0, 0),
    ("hook-payloads/sessionstart-startup.json", 0, 0),
    ("hook-payloads/sessionend-other.json", 0, 0),
    ("hook-payloads/stop.json", 0, 0),
    ("hook-payloads/userpromptsubmit.json", 0, 0),
    ("hook-payloads/precompact-auto.json", 0, 0),
    ("observed-payloads/PostToolUse.Write.json", 1, 0),
    ("observed-payloads/PostToolUse.Edit.json", 1, 0),
    ("observed-payloads/PostToolUse.mcp__e2e__ping.json", 0, 0),
]


def _count(project: Project, event_type: str) -> int:
    runtime = project.runtime()
    try:
        return runtime.query_events(EventFilter(types=(event_type,))).total
    finally:
        runtime.close()


def _events(project: Project, event_type: str) -> list:
    runtime = project.runtime()
    try:
        return runtime.query_events(EventFilter(types=(event_type,)), limit=500, descending=False).events
    finally:
        runtime.close()


def _create_named_files(payload: dict, root: Path) -> None:
    """Create the file a file-tool payload names, as Claude Code would have left it."""
    tool_input = payload.get("tool_input") or {}
    target = tool_input.get("file_path") or tool_input.get("notebook_path")
    if payload.get("hook_event_name") == "PostToolUse" and target:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tool_input.get("content") or "# @touchpoint fixture-file\n", encoding="utf-8")


@pytest.mark.parametrize(("fixture", "saved", "commands"), FIXTURE_EXPECTATIONS)
def test_recorded_payload(project: Project, fixture: str, saved: int, commands: int) -> None:
    folder = fixture.split("/")[0]
    payload = load_fixture(fixture, project.root, RECORDED_ROOTS[folder])
    _create_named_files(payload, project.root)

    run = project.run_hook(payload)

    assert run.returncode == 0
    assert run.stdout == b""
    assert _count(project, "file.saved") == saved
    assert _count(project, "command.executed") == commands


def test_file_saved_fields(project: Project) -> None:
    payload = load_fixture("observed-payloads/PostToolUse.Write.json", project.root, "/tmp/e2e-proj")
    content = payload["tool_input"]["content"]
    project.write("src/a.py", content)

    project.run_hook(payload)

    [event] = _events(project, "file.saved")
    assert event.payload["path"] == "src/a.py"
    assert event.payload["tool"] == "Write"
    assert event.payload["size"] == len(content.encode())
    assert event.payload["content_hash"].startswith("sha256:")
    assert event.metadata["session_id"] == payload["session_id"]
    assert event.metadata["tool_use_id"] == payload["tool_use_id"]
    assert content not in json.dumps(event.to_dict())


def test_multiedit_recorded_once(project: Project) -> None:
    project.write("src/app.py", "import math\n\n# @touchpoint checkout-total\ndef total(items):\n"
                  "    return math.fsum(i.price for i in items)  # @touchpoint price-sum\n")
    multiedit = {
        "session_id": "s-01", "cwd": str(project.root), "hook_event_name": "PostToolUse", "tool_name": "MultiEdit",
        "tool_input": {"file_path": str(project.root / "src/app.py"), "edits": [
            {"old_string": "# TODO total", "new_string": "# @touchpoint checkout-total"},
            {"old_string": "return sum(", "new_string": "return math.fsum("},
            {"old_string": "for i in items)", "new_string": "for i in items)  # @touchpoint price-sum"},
        ]},
        "tool_response": {"filePath": str(project.root / "src/app.py")}, "tool_use_id": "toolu_01",
    }

    assert project.run_hook(multiedit).returncode == 0
    [event] = _events(project, "file.saved")
    assert event.payload["tool"] == "MultiEdit"
    assert event.payload["edits"] == 3
    assert event.metadata["session_id"] == "s-01"

    runtime = project.runtime()
    rows, _ = runtime.list_touchpoints(path="src/app.py")
    runtime.close()
    assert [(row.name, row.line) for row in rows] == [("checkout-total", 3), ("price-sum", 5)]

    edit = {**multiedit, "tool_name": "Edit", "tool_use_id": "toolu_01b",
            "tool_input": {"file_path": str(project.root / "src/app.py"), "old_string": "a", "new_string": "b"}}
    project.run_hook(edit)
    events = _events(project, "file.saved")
    assert len(events) == 2
    assert events[1].payload["path"] == events[0].payload["path"]


def test_missing_broken_and_extra_fields(project: Project) -> None:
    project.write("src/app.py", "# @touchpoint boot\n")
    app = str(project.root / "src/app.py")
    without_cwd = {"session_id": "s-03", "hook_event_name": "PostToolUse", "tool_name": "Write",
                   "tool_input": {"file_path": app, "content": "# @touchpoint boot\n"},
                   "tool_response": {"type": "create", "filePath": app}}
    with_extras = {"session_id": "s-03", "cwd": str(project.root), "permission_mode": "acceptEdits",
                   "hook_event_name": "PostToolUse", "prompt_id": "p-9", "effort": "high", "agent_id": "a-1",
                   "agent_type": "reviewer", "duration_ms": 42, "future_field": {"nested": [1, 2, 3]},
                   "tool_name": "Edit", "tool_input": {"file_path": app, "old_string": "x", "new_string": "y"},
                   "tool_response": {"filePath": app}, "tool_use_id": "toolu_03b"}

    runs = [project.run_hook(without_cwd), project.run_hook(with_extras), project.run_hook(b""),
            project.run_hook(b"not json{")]

    assert [run.returncode for run in runs] == [0, 0, 0, 0]
    assert [run.stdout for run in runs] == [b"", b"", b"", b""]
    assert b"Traceback" not in b"".join(run.stderr for run in runs)
    assert _count(project, "file.saved") == 2
    log = (project.root / ".eventsync" / "hook.log").read_text()
    assert "empty input" in log
    assert "invalid JSON" in log
    runtime = project.runtime()
    rows, total = runtime.list_touchpoints()
    runtime.close()
    assert [(row.name, row.path, row.line) for row in rows] == [("boot", "src/app.py", 1)]
    assert total == 1


def test_staged_write_not_recorded(project: Project) -> None:
    project.write("src/a.py", "x = 1\n")
    payload = {"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Write",
               "tool_input": {"file_path": str(project.root / "src/a.py"), "content": "x = 2\n"},
               "tool_response": {"type": "update", "staged": True}, "tool_use_id": "toolu_staged"}

    assert project.run_hook(payload).returncode == 0
    assert _count(project, "file.saved") == 0


def test_duplicate_delivery_stored_once(project: Project) -> None:
    project.write("src/a.py", "x = 1\n")
    payload = {"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Edit",
               "tool_input": {"file_path": str(project.root / "src/a.py")}, "tool_response": {},
               "tool_use_id": "toolu_twice"}

    project.run_hook(payload)
    project.run_hook(payload)

    assert _count(project, "file.saved") == 1


def test_path_outside_project_rejected(project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.py"
    outside.write_text("secret = 1\n")
    payload = {"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Write",
               "tool_input": {"file_path": str(outside)}, "tool_response": {}, "tool_use_id": "toolu_out"}

    run = project.run_hook(payload)

    assert run.returncode == 0
    assert _count(project, "file.saved") == 0
    assert "outside the project root" in (project.root / ".eventsync" / "hook.log").read_text()


def test_bash_command_redacted(project: Project) -> None:
    token = "ghp_" + "a1" * 18
    payload = {"session_id": "s", "cwd": str(project.root), "hook_event_name": "PostToolUse", "tool_name": "Bash",
               "tool_input": {"command": f"GITHUB_TOKEN={token} gh pr list --password hunter2"},
               "tool_response": {"stdout": "", "stderr": "", "interrupted": False}, "tool_use_id": "toolu_bash"}

    project.run_hook(payload)

    [event] = _events(project, "command.executed")
    assert token not in event.payload["command"]
    assert "hunter2" not in event.payload["command"]
    assert event.payload["command"].startswith("GITHUB_TOKEN=[REDACTED] gh pr list")
    assert event.payload["cwd"] == "."


def test_unwritable_store_spills(project: Project, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores file permissions; the spill path is covered by test_spill_when_data_dir_is_a_file")
    data = project.root / ".eventsync"
    data.mkdir(exist_ok=True)
    project.write("src/a.py", "# @touchpoint a\n")
    mode = data.stat().st_mode
    data.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        run = project.run_hook({"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Edit",
                                "tool_input": {"file_path": str(project.root / "src/a.py")}, "tool_use_id": "t"})
    finally:
        data.chmod(mode)
    assert run.returncode == 0
    assert run.stdout == b""
    assert str(data) in run.stderr.decode()
    assert _count(project, "file.saved") == 1


def test_spill_when_data_dir_is_a_file(project: Project, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    project.write("src/a.py", "# @touchpoint a\n")
    payload = {"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Edit",
               "tool_input": {"file_path": str(project.root / "src/a.py")}, "tool_use_id": "toolu_spill"}

    run = project.run_hook(payload, env={"EVENTSYNC_HOME": str(blocked)})

    assert run.returncode == 0
    assert run.stdout == b""
    assert str(blocked) in run.stderr.decode()
    assert _count(project, "file.saved") == 1


def test_debug_output_stays_off_stdout(project: Project) -> None:
    project.write("src/a.py", "x = 1\n")
    payload = {"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Edit",
               "tool_input": {"file_path": str(project.root / "src/a.py")}, "tool_use_id": "toolu_debug"}

    run = project.run_hook(payload, env={"EVENTSYNC_DEBUG": "1"})

    assert run.returncode == 0
    assert run.stdout == b""
    assert b"captured file.saved" in run.stderr


def test_hook_ignores_locked_log(project: Project) -> None:
    project.write("src/h.py", "# @touchpoint hot-path\n")
    project.runtime().close()
    store = project.root / ".eventsync" / "events.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(store)!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read(); c.execute('COMMIT')"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        run = project.run_hook({"session_id": "s-09", "hook_event_name": "PostToolUse", "tool_name": "Edit",
                                "tool_input": {"file_path": str(project.root / "src/h.py")},
                                "tool_use_id": "toolu_09_lock"})
        with pytest.raises(sqlite3.OperationalError):
            sqlite3.connect(store, timeout=0).execute("BEGIN IMMEDIATE")
    finally:
        holder.communicate("", timeout=10)
    assert run.returncode == 0
    [event] = _events(project, "file.saved")
    assert event.metadata["tool_use_id"] == "toolu_09_lock"


def test_paths_with_spaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import git

    from mcp_server.install import init_project

    root = tmp_path / "My Projects" / "shop app"
    root.mkdir(parents=True)
    git.Repo.init(root)
    init_project(str(root))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    project = Project(root.resolve())
    project.write("src/main.py", "# @touchpoint main-entry\n")
    payload = {"session_id": "s-04", "cwd": str(root), "hook_event_name": "PostToolUse", "tool_name": "Edit",
               "tool_input": {"file_path": str(root / "src/main.py"), "old_string": "a", "new_string": "b"},
               "tool_response": {}, "tool_use_id": "toolu_04"}

    run = project.run_hook(payload)

    assert run.returncode == 0
    assert b"No such file" not in run.stderr
    assert "\\" not in project.hook_command.replace('\\"', "")
    [event] = _events(project, "file.saved")
    assert event.payload["path"] == "src/main.py"
    runtime = project.runtime()
    rows, _ = runtime.list_touchpoints()
    runtime.close()
    assert [(row.name, row.path, row.line) for row in rows] == [("main-entry", "src/main.py", 1)]


def _bash(project: Project, command: str, description: str | None = None, tool_use_id: str = "toolu_b") -> dict:
    tool_input: dict[str, object] = {"command": command}
    if description is not None:
        tool_input["description"] = description
    return {"session_id": "s", "cwd": str(project.root), "hook_event_name": "PostToolUse", "tool_name": "Bash",
            "tool_input": tool_input, "tool_response": {"stdout": "", "stderr": "", "interrupted": False},
            "tool_use_id": tool_use_id}


def test_bash_description_redacted(project: Project) -> None:
    token = "ghp_" + "b2" * 18
    payload = _bash(project, "gh auth status", f"Log in with token {token} and password: hunter2")

    project.run_hook(payload)

    [event] = _events(project, "command.executed")
    assert token not in event.payload["description"]
    assert "hunter2" not in event.payload["description"]
    assert event.payload["description"].startswith("Log in with token [REDACTED]")


def test_long_description_cut(project: Project) -> None:
    token = "ghp_" + "c3" * 18
    description = f"token {token} " + "d" * 300_000
    payload = _bash(project, "true", description)

    run = project.run_hook(payload)

    assert run.returncode == 0
    [event] = _events(project, "command.executed")
    stored = event.payload["description"]
    assert stored.endswith("…[truncated]")
    assert len(stored) < 2100
    assert token not in stored
    assert stored.startswith("token [REDACTED] ddd")
    assert not (project.root / ".eventsync" / "inbox" / "rejected").exists()


def test_secret_across_cut_not_kept(project: Project) -> None:
    secret_url = "https://deploy:" + "S3CRETS3CRET" * 4 + "@git.test/repo"
    command = "x" * 1990 + " git clone " + secret_url
    project.run_hook(_bash(project, command))

    [event] = _events(project, "command.executed")
    assert "S3CRET" not in event.payload["command"]
    assert event.payload["command"].endswith("…[truncated]")


def test_lone_surrogate_kept_escaped(project: Project) -> None:
    # json.dumps writes the lone surrogates as \ud800 escapes, as Node's JSON.stringify does.
    payload = _bash(project, "echo \ud800 >> notes.txt", "Append \udfff")

    run = project.run_hook(payload)

    assert run.returncode == 0
    [event] = _events(project, "command.executed")
    assert event.payload["command"] == "echo \\ud800 >> notes.txt"
    assert event.payload["description"] == "Append \\udfff"
    log = project.root / ".eventsync" / "hook.log"
    assert not log.exists() or "failed unexpectedly" not in log.read_text()


def test_lone_surrogate_in_file_path(project: Project) -> None:
    payload = {"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Write",
               "tool_input": {"file_path": str(project.root / "src" / "a\ud800.py")}, "tool_use_id": "toolu_sur"}

    run = project.run_hook(payload)

    assert run.returncode == 0
    [event] = _events(project, "file.saved")
    assert event.payload["path"] == "src/a\\ud800.py"
    assert event.payload["exists"] is False


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_special_file_not_opened(project: Project, kind: str) -> None:
    import socket

    target = project.root / "src" / "pipe.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    listener = None
    if kind == "fifo":
        os.mkfifo(target)
    else:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(target))
    payload = {"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Write",
               "tool_input": {"file_path": str(target)}, "tool_use_id": f"toolu_{kind}"}
    try:
        # Opening a FIFO without a writer blocks, so a hook that opened it would time out here.
        run = project.run_hook(payload)
    finally:
        if listener is not None:
            listener.close()

    assert run.returncode == 0
    [event] = _events(project, "file.saved")
    assert event.payload["content_hash"] is None
    assert event.payload["exists"] is True
    assert event.payload["hash_skipped"] == {"fifo": "named pipe", "socket": "socket"}[kind]


def test_rejected_inbox_file_counted(project: Project) -> None:
    new = project.root / ".eventsync" / "inbox" / "new"
    new.mkdir(parents=True, exist_ok=True)
    (new / "00000000000000000001-1-0001-000000.json").write_text("{not json", encoding="utf-8")

    runtime = project.runtime()
    try:
        stats = runtime.statistics()
    finally:
        runtime.close()
    text = subprocess.run(
        [sys.executable, "-m", "mcp_server", "stats"], capture_output=True, text=True, timeout=60, check=False,
        cwd=project.root, env={**os.environ, "CLAUDE_PROJECT_DIR": str(project.root)},
    )

    assert stats["inbox_pending"] == 0
    assert stats["inbox_rejected"] == 1
    assert text.returncode == 0, text.stderr
    assert "1 rejected" in text.stdout


def test_file_changed_fifo_not_opened(project: Project) -> None:
    target = project.root / "watched.py"
    os.mkfifo(target)
    payload = {"session_id": "s", "cwd": str(project.root), "hook_event_name": "FileChanged",
               "file_path": str(target), "event": "change"}

    run = project.run_hook(payload)

    assert run.returncode == 0
    [event] = _events(project, "code.modified")
    assert event.payload["content_hash"] is None
    assert event.payload["hash_skipped"] == "named pipe"
