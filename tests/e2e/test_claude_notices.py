"""End-to-end test: a Claude Code session hears that another session changed a file it read.

The real ``claude -p`` runs against the scripted fake model of the claude-e2e harness (see
test_claude_cli.py, whose helpers this file reuses). The fake model makes the agent Read
``src/shared.py``, then run a Bash command that only waits. While it waits, the test plays a
second session: it rewrites the file and pipes a ``PostToolUse`` ``Write`` payload from session
``other-agent`` through the hook command in ``.claude/settings.json``. eventsync's MCP server,
started by claude, ingests that event and its reconcile projection leaves a notice for the agent's
session. Once the notice file exists the test ends the Bash command, and the hook of that Bash call
hands the notice to Claude Code. The test reads the fake server's request log to check that the
model received the notice once, after the Bash tool result, and never again after a later Read.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
from conftest import Project
from test_claude_cli import (
    CLAUDE_TIMEOUT,
    EVENTS_TIMEOUT,
    _claude_env,
    _eventsync,
    _fake_model,
    _find_claude,
    _find_harness,
    _netns_tools,
    _print_on_failure,
    _read_jsonl,
    _run_claude,
    _tail,
)

from mcp_server import clock
from mcp_server.capture import notices

SHARED_PATH = "src/shared.py"
OTHER_PATH = "src/other.py"
ORIGINAL = "LIMIT = 10\n"
CHANGED = "LIMIT = 20  # raised by the other session\n"
OTHER_SESSION = "other-agent"

WAIT_TIMEOUT = 20.0
"""Seconds the other session waits for the agent's Bash command to start, and again for the notice file.

It stays below CLAUDE_TIMEOUT, so a missing notice fails with its own message.
"""

BASH_WAIT_POLLS = 600
"""Polls, 0.05 s apart, that the agent's Bash command makes before it gives up (30 s)."""

POLL_INTERVAL = 0.05
CONTEXT_MARKER = "hook additional context: "
"""Text with which Claude Code 2.1.197 introduces a hook's ``additionalContext`` to the model."""


def _wait_for(condition: Callable[[], bool], description: str) -> None:
    """Poll ``condition`` until it holds, or raise AssertionError naming ``description`` after WAIT_TIMEOUT."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {WAIT_TIMEOUT:.0f} s waiting for {description}")
        time.sleep(POLL_INTERVAL)


@dataclass
class OtherSession:
    """A second agent that changes ``src/shared.py`` while the claude session's Bash command waits."""

    project: Project
    agent_session: str
    waiting_marker: Path
    """File the agent's Bash command creates when it starts waiting."""
    release_marker: Path
    """File that ends the agent's Bash command."""
    changed_mtime_ns: int | None = None
    failure: BaseException | None = None

    @property
    def notice_folder(self) -> Path:
        return Path(notices.session_folder(str(self.project.root / ".eventsync"), self.agent_session))

    def pending_notices(self) -> list[Path]:
        return sorted(self.notice_folder.glob("*" + notices.NOTICE_SUFFIX))

    def run(self) -> None:
        """Change the file once the agent waits, then release the agent once its notice exists."""
        try:
            _wait_for(self.waiting_marker.exists, "the agent's Bash command to start")
            path = self.project.write(SHARED_PATH, CHANGED)
            self.changed_mtime_ns = path.stat().st_mtime_ns
            hooked = self.project.run_hook(self._write_payload(path))
            assert hooked.returncode == 0, f"the other session's hook failed: {hooked.stderr!r}"
            assert hooked.stdout == b"", f"the other session got output it should not: {hooked.stdout!r}"
            # The server's tailer ingests every 0.1 s, and the hook of the agent's Bash call must
            # find the notice in place, so the agent waits until the projection has written it.
            _wait_for(lambda: bool(self.pending_notices()), f"a notice for session {self.agent_session}")
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread after claude ends
            self.failure = exc
        finally:
            self.release_marker.touch()

    def _write_payload(self, path: Path) -> dict[str, Any]:
        """Return a PostToolUse payload shaped like the one Claude Code 2.1.197 sends for a Write that updates a file."""
        return {
            "session_id": OTHER_SESSION,
            "cwd": str(self.project.root),
            "permission_mode": "default",
            "hook_event_name": "PostToolUse",
            "tool_name": "Write",
            "tool_input": {"file_path": str(path), "content": CHANGED},
            "tool_response": {
                "type": "update", "filePath": str(path), "content": CHANGED, "structuredPatch": [],
                "originalFile": ORIGINAL, "userModified": False,
            },
            "tool_use_id": "toolu_other_agent_1",
            "duration_ms": 3,
        }


def _waiting_command(waiting: Path, release: Path) -> str:
    """Return a shell command that creates ``waiting`` and returns once ``release`` exists (30 s at most)."""
    waiting_arg, release_arg = shlex.quote(str(waiting)), shlex.quote(str(release))
    return (
        f": > {waiting_arg} && polls=0 && "
        f"while [ ! -e {release_arg} ] && [ $polls -lt {BASH_WAIT_POLLS} ]; do sleep {POLL_INTERVAL}; "
        f"polls=$((polls + 1)); done && [ -e {release_arg} ] && echo released"
    )


def _model_script(project: Path, waiting_command: str) -> dict[str, Any]:
    """Return the fake model's turns: Read the shared file, wait in Bash, Read another file, then text."""
    return {
        "turns": [
            {"tool_use": {"name": "Read", "input": {"file_path": str(project / SHARED_PATH)}}},
            {"tool_use": {"name": "Bash", "input": {"command": waiting_command, "description": "Wait"}}},
            {"tool_use": {"name": "Read", "input": {"file_path": str(project / OTHER_PATH)}}},
            {"text": "done"},
        ],
        "side_text": "ok",
    }


def _user_blocks(request: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """Return (message index, block) for every content block of the user messages in a logged request."""
    blocks = []
    for index, message in enumerate(request["body"].get("messages", [])):
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, list):
            continue
        blocks.extend((index, block) for block in content if isinstance(block, dict))
    return blocks


def _hook_contexts(request: dict[str, Any]) -> list[tuple[int, str]]:
    """Return (message index, text) for each text block that carries a hook's additional context."""
    return [
        (index, block["text"])
        for index, block in _user_blocks(request)
        if block.get("type") == "text" and CONTEXT_MARKER in str(block.get("text", ""))
    ]


def _tool_result_message(request: dict[str, Any], tool_use_id: str) -> int:
    """Return the index of the user message that carries the tool_result for ``tool_use_id``."""
    found = [
        index
        for index, block in _user_blocks(request)
        if block.get("type") == "tool_result" and block.get("tool_use_id") == tool_use_id
    ]
    assert len(found) == 1, f"expected one tool_result for {tool_use_id}, found it in messages {found}"
    return found[0]


def test_other_session_change_reaches_claude(project: Project, tmp_path: Path) -> None:
    harness = _find_harness()
    claude = _find_claude()

    project.write(SHARED_PATH, ORIGINAL)
    project.write(OTHER_PATH, "UNRELATED = True\n")
    repo = git.Repo(project.root)
    repo.index.add([SHARED_PATH, OTHER_PATH])
    repo.index.commit("add the shared files")
    repo.close()

    home = tmp_path / "home"
    home.mkdir()
    workdir = tmp_path / "work"
    workdir.mkdir()
    session_id = str(uuid.uuid4())
    other = OtherSession(project, session_id, workdir / "agent-waiting", workdir / "agent-released")

    script = workdir / "script.json"
    waiting_command = _waiting_command(other.waiting_marker, other.release_marker)
    script.write_text(json.dumps(_model_script(project.root, waiting_command), indent=2), encoding="utf-8")

    netns = _netns_tools()
    debug_log = workdir / "claude-debug.log"
    hook_log = project.root / ".eventsync" / "hook.log"
    changer = threading.Thread(target=other.run, name="other-session", daemon=True)
    with _fake_model(harness, script, workdir, netns) as fake:
        command = [
            str(claude), "-p", "do it", "--output-format", "json", "--session-id", session_id,
            "--allowedTools", "Read,Bash", "--debug-file", str(debug_log),
        ]
        if netns is not None:
            command = [netns[1], f"--net=/proc/{fake.process.pid}/ns/net", "--", *command]
        changer.start()
        try:
            run = _run_claude(command, project.root, _claude_env(fake.port, home))
        finally:
            other.release_marker.touch()  # a claude that never ran Bash must not leave the thread waiting
            changer.join(timeout=WAIT_TIMEOUT + 5)

    requests = _read_jsonl(fake.request_log)
    main_requests = [record for record in requests if record.get("kind") == "main"]

    def describe() -> str:
        sections = [
            f"claude command: {shlex.join(run.command)}",
            f"claude exit status: {'timed out' if run.timed_out else run.returncode} after {run.seconds:.1f} s",
            "claude stdout:\n" + run.stdout,
            "claude stderr:\n" + run.stderr,
            f"hook log {hook_log}:\n" + _tail(hook_log),
            "requests the fake model answered:\n" + "\n".join(
                json.dumps({key: record.get(key) for key in ("seq", "path", "kind", "turn", "warning")})
                for record in requests
            ),
            f"fake model stderr {fake.stderr_path}:\n" + _tail(fake.stderr_path),
            f"claude debug log {debug_log}:\n" + _tail(debug_log),
        ]
        return "\n\n".join(sections)

    with _print_on_failure(describe):
        assert not changer.is_alive(), "the other session's thread did not finish"
        if other.failure is not None:
            raise other.failure
        assert not run.timed_out, f"claude did not finish within {CLAUDE_TIMEOUT:.0f} s"
        assert run.returncode == 0, f"claude exited with status {run.returncode}"
        result = json.loads(run.stdout)
        assert result.get("is_error") is False, f"claude reported an error: {result!r}"
        assert result.get("result") == "done"
        assert not result.get("permission_denials"), f"tools were denied: {result.get('permission_denials')!r}"
        assert result.get("session_id") == session_id
        warnings = [record["warning"] for record in requests if record.get("warning")]
        assert not warnings, f"claude did not offer a scripted tool to the model: {warnings}"

        tool_calls = [
            (block["name"], block["id"])
            for record in main_requests
            for block in (record.get("answer") or {}).get("content", [])
            if block.get("type") == "tool_use"
        ]
        assert [name for name, _ in tool_calls] == ["Read", "Bash", "Read"]
        bash_id, later_read_id = tool_calls[1][1], tool_calls[2][1]

        assert other.changed_mtime_ns is not None
        expected_line = (
            f"{clock.utc_timestamp(other.changed_mtime_ns)} {SHARED_PATH} changed by session {OTHER_SESSION} (Write)"
        )
        expected_text = (
            f"<system-reminder>\nPostToolUse:Bash {CONTEXT_MARKER}{notices.format_context([expected_line])}"
            "\n</system-reminder>"
        )
        last = main_requests[-1]
        contexts = _hook_contexts(last)
        assert [text for _, text in contexts] == [expected_text], "the model did not receive the notice exactly once"
        assert contexts[0][0] == _tool_result_message(last, bash_id), "the notice did not follow the Bash tool result"
        assert _tool_result_message(last, later_read_id) > contexts[0][0]

        earlier = [record for record in main_requests if not any(
            block.get("type") == "tool_result" and block.get("tool_use_id") == bash_id
            for _, block in _user_blocks(record)
        )]
        assert earlier, "no request went out before the Bash call's result"
        assert all(_hook_contexts(record) == [] for record in earlier), "the notice reached the model too early"
        assert other.pending_notices() == [], "a notice was left behind for the agent's session"

        # The agent's Bash command was running when the file changed, but the reconcile projection
        # must record the other session's Write as the only change and attribute nothing to the agent.
        listed = _eventsync(
            "events", "--json", "--asc", "--limit", "500", "--project", str(project.root), cwd=project.root, timeout=EVENTS_TIMEOUT,
        )
        assert listed.returncode == 0, f"eventsync events failed ({listed.returncode}):\n{listed.stderr}"
        changes = [
            (event["type"], event["metadata"].get("session_id"), event["payload"].get("tool"))
            for event in json.loads(listed.stdout)
            if event["payload"].get("path") == SHARED_PATH
        ]
        assert changes == [("file.read", session_id, "Read"), ("file.saved", OTHER_SESSION, "Write")]

    isolation = "in a loopback-only network namespace" if netns else "without network isolation"
    print(f"claude -p ran {isolation} in {run.seconds:.1f} s")
