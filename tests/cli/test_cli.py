"""The ``eventsync`` command: its JSON output matches the MCP tools' fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import Project

TOUCHPOINT_FIELDS = {"name", "path", "line", "column", "description", "language"}
EVENT_FIELDS = {"position", "id", "type", "timestamp", "source", "payload", "metadata"}


def _cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_server", *args], capture_output=True, text=True, timeout=60, check=False,
        cwd=project.root, env={**os.environ, "CLAUDE_PROJECT_DIR": str(project.root)},
    )


def _capture(project: Project, relative: str, content: str, tool_use_id: str) -> None:
    project.write(relative, content)
    project.run_hook({"session_id": "s-cli", "hook_event_name": "PostToolUse", "tool_name": "Write",
                      "tool_input": {"file_path": str(project.root / relative)}, "tool_use_id": tool_use_id})


def test_events_json(project: Project) -> None:
    _capture(project, "src/a.py", "# @touchpoint alpha\n", "toolu_1")

    result = _cli(project, "events", "--json", "--type", "file.saved")

    assert result.returncode == 0, result.stderr
    [event] = json.loads(result.stdout)
    assert set(event) == EVENT_FIELDS
    assert event["payload"]["path"] == "src/a.py"


def test_touchpoints_json(project: Project) -> None:
    _capture(project, "src/a.py", "# @touchpoint alpha The first one\n", "toolu_1")

    result = _cli(project, "touchpoints", "--json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"name": "alpha", "path": "src/a.py", "line": 1, "column": 3, "description": "The first one", "language": "python"}
    ]
    assert set(json.loads(result.stdout)[0]) == TOUCHPOINT_FIELDS


def test_search_and_context(project: Project) -> None:
    _capture(project, "src/a.py", "# @touchpoint alpha The first one\ndef a():\n    pass\n", "toolu_1")

    search = _cli(project, "search", "first", "--json")
    context = _cli(project, "context", "alpha", "--json")

    assert [hit["name"] for hit in json.loads(search.stdout)] == ["alpha"]
    assert "def a():" in json.loads(context.stdout)["locations"][0]["code"]


def test_emit_and_rebuild(project: Project) -> None:
    _capture(project, "src/a.py", "# @touchpoint alpha\n", "toolu_1")

    emitted = _cli(project, "emit", "note.added", "--payload", '{"text": "hello"}')
    rebuilt = _cli(project, "rebuild", "touchpoints")
    listed = _cli(project, "touchpoints", "--json")

    assert emitted.returncode == 0, emitted.stderr
    assert "stored note.added" in emitted.stdout
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert [row["name"] for row in json.loads(listed.stdout)] == ["alpha"]


def test_errors_name_the_value(project: Project) -> None:
    bad_payload = _cli(project, "emit", "note.added", "--payload", "{oops")
    bad_type = _cli(project, "events", "--type", "Bad")
    unknown = _cli(project, "rebuild", "nope")

    assert bad_payload.returncode == 1
    assert "--payload is not valid JSON" in bad_payload.stderr
    assert bad_type.returncode == 1
    assert "'Bad'" in bad_type.stderr
    assert "unknown module 'nope'" in unknown.stderr
    assert "Traceback" not in bad_payload.stderr + bad_type.stderr + unknown.stderr


def test_events_text_whole_words(project: Project) -> None:
    _capture(project, "src/checkout.py", "x = 1\n", "toolu_1")
    _capture(project, "src/cart.py", "y = 2\n", "toolu_2")

    whole = _cli(project, "events", "--json", "--type", "file.saved", "--text", "checkout")
    part = _cli(project, "events", "--json", "--type", "file.saved", "--text", "check")
    prefix = _cli(project, "events", "--json", "--type", "file.saved", "--text", "check*")

    assert whole.returncode == 0, whole.stderr
    assert [event["payload"]["path"] for event in json.loads(whole.stdout)] == ["src/checkout.py"]
    assert json.loads(part.stdout) == []
    assert [event["payload"]["path"] for event in json.loads(prefix.stdout)] == ["src/checkout.py"]


def test_emit_rejects_module_types(project: Project) -> None:
    completed = _cli(project, "emit", "task.completed", "--payload", '{"project_id": "race", "task_id": "x2"}')
    saved = _cli(project, "emit", "file.saved", "--payload", '{"path": "/etc/passwd"}')
    failed = _cli(project, "emit", "event.failed")
    entity = _cli(project, "emit", "entity.created", "--payload", '{"entity_id": "beta", "kind": "milestone"}')
    listed = _cli(project, "events", "--json")

    assert completed.returncode == 1
    assert "cannot emit 'task.completed'" in completed.stderr
    assert "eventsync pm" in completed.stderr
    assert saved.returncode == 1
    assert "cannot emit 'file.saved'" in saved.stderr
    assert failed.returncode == 1
    assert "cannot emit 'event.failed'" in failed.stderr
    assert entity.returncode == 0, entity.stderr
    assert [event["type"] for event in json.loads(listed.stdout)] == ["entity.created"]


def test_out_of_range_numbers_rejected(project: Project) -> None:
    _capture(project, "src/a.py", "# @touchpoint alpha\n", "toolu_1")

    cases = {
        "negative age": ("prune", "--type", "file.*", "--older-than-days", "-1"),
        "infinite age": ("prune", "--type", "file.*", "--older-than-days", "inf"),
        "huge limit": ("search", "cart", "--limit", "99999999999999999999"),
        "huge cursor": ("events", "--cursor", "99999999999999999999"),
        "negative interval": ("tail", "--interval", "-1"),
        "infinite estimate": ("pm", "add", "Shop", "Ship3", "--estimate", "inf"),
        "zero estimate": ("pm", "add", "Shop", "Ship3", "--estimate", "0"),
    }
    results = {name: _cli(project, *args) for name, args in cases.items()}
    events = _cli(project, "events", "--json", "--type", "file.saved")

    for name, result in results.items():
        assert result.returncode == 2, (name, result.stderr)
        assert "invalid" in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr, (name, result.stderr)
    assert len(json.loads(events.stdout)) == 1


def test_replay_range_reversed_rejected(project: Project) -> None:
    result = _cli(project, "replay", "touchpoints", "--from", "10", "--to", "5")

    assert result.returncode == 1
    assert "--to 5 is before --from 10" in result.stderr


def test_entity_attribute_out_of_range(project: Project) -> None:
    too_large = _cli(project, "pm", "entity", "create", "service", "--attr", "n=1e999")
    as_text = _cli(project, "pm", "entity", "create", "service", "--attr", "n=NaN", "--json")

    assert too_large.returncode == 1
    assert "invalid --attr n=1e999" in too_large.stderr
    assert "Traceback" not in too_large.stderr
    assert as_text.returncode == 0, as_text.stderr
    assert json.loads(as_text.stdout)["attributes"] == {"n": "NaN"}


def test_reads_while_write_lock_held(project: Project) -> None:
    _capture(project, "src/a.py", "# @touchpoint alpha The first one\ndef a():\n    pass\n", "toolu_1")
    assert _cli(project, "touchpoints").returncode == 0  # ingests and indexes a.py
    lock_holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n"
         "connection = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "connection.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\nsys.stdin.readline()\n",
         str(project.root / ".eventsync" / "events.db")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert lock_holder.stdout is not None and lock_holder.stdout.readline() == "locked\n"
        _capture(project, "src/b.py", "# @touchpoint beta\n", "toolu_2")  # stays in the inbox
        results = {
            "events": _cli(project, "events", "--json"),
            "stats": _cli(project, "stats", "--json"),
            "touchpoints": _cli(project, "touchpoints", "--json"),
            "search": _cli(project, "search", "first", "--json"),
            "context": _cli(project, "context", "alpha", "--json"),
        }
    finally:
        lock_holder.communicate("\n", timeout=30)

    for name, result in results.items():
        assert result.returncode == 0, (name, result.stderr)
        assert "Traceback" not in result.stderr, (name, result.stderr)
    for name in ("events", "touchpoints", "search"):
        assert "1 captured events wait in the inbox" in results[name].stderr, (name, results[name].stderr)
    assert [row["name"] for row in json.loads(results["touchpoints"].stdout)] == ["alpha"]
    assert json.loads(results["stats"].stdout)["inbox_pending"] == 1
    assert [hit["name"] for hit in json.loads(results["search"].stdout)] == ["alpha"]
    assert "def a():" in json.loads(results["context"].stdout)["locations"][0]["code"]


def test_search_without_words_rejected(project: Project) -> None:
    _capture(project, "src/a.py", "# @touchpoint alpha The first one\n", "toolu_1")

    empty = _cli(project, "search", "")
    star = _cli(project, "search", "*")
    unmatched = _cli(project, "search", "nothing")

    for result in (empty, star):
        assert result.returncode == 1
        assert "contains no words" in result.stderr
        assert "eventsync touchpoints" in result.stderr
    assert unmatched.returncode == 0
    assert "no touchpoint matches 'nothing'" in unmatched.stderr


def test_events_bad_filters_rejected(project: Project) -> None:
    _capture(project, "src/a.py", "# @touchpoint alpha\n", "toolu_1")

    wordless = {text: _cli(project, "events", "--text", text) for text in ("*", '"', "(")}
    empty_source = _cli(project, "events", "--source", "")
    too_many = _cli(project, "events", "--limit", "501")
    zero_cursor = _cli(project, "events", "--cursor", "0")
    maximum_limit = _cli(project, "events", "--json", "--limit", "500")

    for text, result in wordless.items():
        assert result.returncode == 1, (text, result.stderr)
        assert "contains no words" in result.stderr, (text, result.stderr)
    assert empty_source.returncode == 1
    assert "invalid source ''" in empty_source.stderr
    assert too_many.returncode == 2
    assert "at most 500" in too_many.stderr
    assert zero_cursor.returncode == 2
    assert "at least 1" in zero_cursor.stderr
    assert maximum_limit.returncode == 0, maximum_limit.stderr


def test_events_multiline_command_one_line(project: Project) -> None:
    project.run_hook({"session_id": "s-cli", "hook_event_name": "PostToolUse", "tool_name": "Bash",
                      "tool_input": {"command": "echo one\necho two\r\necho three"},
                      "tool_response": {"stdout": "", "stderr": "", "interrupted": False}, "tool_use_id": "toolu_1"})

    listed = _cli(project, "events", "--type", "command.executed")

    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 1, listed.stdout
    assert "echo one\\necho two\\r\\necho three" in lines[0]


def test_not_found_names_cli_commands(project: Project) -> None:
    context = _cli(project, "context", "nope")
    task = _cli(project, "pm", "complete", "nope")

    assert context.returncode == 1
    assert "'eventsync touchpoints'" in context.stderr
    assert task.returncode == 1
    assert "'eventsync pm add'" in task.stderr
