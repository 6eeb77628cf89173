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
