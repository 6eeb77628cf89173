"""The MCP server over stdio, driven by the SDK client in legacy mode as Claude Code drives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from conftest import Project

pytestmark = pytest.mark.anyio

TESTS = Path(__file__).resolve().parents[1]
TOOLS = {"query_events", "list_touchpoints", "search_touchpoints", "get_context", "emit_event", "log_stats",
         "parked_events"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _server_env(project: Project, modules: str = "") -> dict[str, str]:
    env = {"CLAUDE_PROJECT_DIR": str(project.root), "PYTHONPATH": str(TESTS), "EVENTSYNC_DEBUG": "1",
           "XDG_STATE_HOME": os.environ.get("XDG_STATE_HOME", "")}
    if modules:
        env["EVENTSYNC_MODULES"] = modules
    return env


@asynccontextmanager
async def _client(project: Project, modules: str = "") -> AsyncIterator[Client]:
    parameters = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server", "serve"], env=_server_env(project, modules),
        cwd=str(project.root),
    )
    async with Client(parameters, mode="legacy") as client:
        yield client


async def _call(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments or {})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_lists_tools(project: Project) -> None:
    with anyio.fail_after(60):
        async with _client(project) as client:
            tools = await client.list_tools()

    assert TOOLS <= {tool.name for tool in tools.tools}


async def test_answers_from_hook_events(project: Project) -> None:
    project.write("src/shop.py", "# @touchpoint checkout-total Sums the cart\ndef total():\n    return 0\n")
    project.run_hook({"session_id": "s-mcp", "hook_event_name": "PostToolUse", "tool_name": "Write",
                      "tool_input": {"file_path": str(project.root / "src/shop.py")}, "tool_use_id": "toolu_m"})

    with anyio.fail_after(60):
        async with _client(project) as client:
            touchpoints = await _call(client, "list_touchpoints")
            events = await _call(client, "query_events", {"type": "file.saved"})
            search = await _call(client, "search_touchpoints", {"query": "cart"})
            context = await _call(client, "get_context", {"name": "checkout-total"})

    assert [(t["name"], t["path"], t["line"]) for t in touchpoints["touchpoints"]] == [
        ("checkout-total", "src/shop.py", 1)
    ]
    assert touchpoints["touchpoints"][0]["description"] == "Sums the cart"
    assert events["total"] == 1
    assert events["events"][0]["metadata"]["session_id"] == "s-mcp"
    assert [hit["name"] for hit in search["hits"]] == ["checkout-total"]
    assert "def total():" in context["locations"][0]["code"]


async def test_errors_are_tool_errors(project: Project) -> None:
    with anyio.fail_after(60):
        async with _client(project) as client:
            bad_type = await client.call_tool("emit_event", {"type": "Bad Type"})
            unknown = await client.call_tool("get_context", {"name": "nope"})
            bad_pattern = await client.call_tool("query_events", {"type": "a.>.b"})

    assert bad_type.is_error
    assert "invalid event type 'Bad Type'" in bad_type.content[0].text
    assert unknown.is_error
    assert "no touchpoint named 'nope'" in unknown.content[0].text
    assert bad_pattern.is_error


async def test_query_bad_filters_rejected(project: Project) -> None:
    with anyio.fail_after(60):
        async with _client(project) as client:
            wordless = {text: await client.call_tool("query_events", {"text": text}) for text in ("*", '"', "(")}
            source = await client.call_tool("query_events", {"source": ""})
            positions = await client.call_tool("query_events", {"since_position": 9, "until_position": 3})
            times = await client.call_tool("query_events", {"since": "2026-12-05", "until": "2026-12-04"})
            valid = await client.call_tool("query_events", {"text": "file*", "since_position": 0, "until_position": 9})

    for text, result in wordless.items():
        assert result.is_error, text
        assert "contains no words" in result.content[0].text, text
    assert source.is_error
    assert "invalid source ''" in source.content[0].text
    assert positions.is_error
    assert "since_position 9 is not below until_position 3" in positions.content[0].text
    assert times.is_error
    assert "invalid time range" in times.content[0].text
    assert not valid.is_error, valid.content[0].text


async def test_failing_handler_reported(project: Project) -> None:
    project.write("src/a.py", "# @touchpoint alpha\n")
    project.write("src/b.py", "# @touchpoint beta\n")

    with anyio.fail_after(60):
        async with _client(project, "support_modules:exploding") as client:
            first = await _call(client, "emit_event", {"type": "note.added", "payload": {"path": "src/a.py"}})
            second = await _call(client, "emit_event", {"type": "note.added", "payload": {"path": "src/b.py"}})
            touchpoints = await _call(client, "list_touchpoints")
            search = await _call(client, "search_touchpoints", {"query": "alpha"})
            with anyio.fail_after(10):
                while (failed := await _call(client, "query_events", {"type": "event.failed"}))["total"] < 2:
                    await anyio.sleep(0.05)
            tools = await client.list_tools()

    assert first["stored"] and second["stored"]
    assert first["failed_handlers"] == ["explode"]
    assert [(t["name"], t["path"], t["line"]) for t in touchpoints["touchpoints"]] == [
        ("alpha", "src/a.py", 1), ("beta", "src/b.py", 1)
    ]
    assert [hit["name"] for hit in search["hits"]] == ["alpha"]
    failures = failed["events"]
    assert len(failures) == 2
    assert {f["payload"]["handler"] for f in failures} == {"explode"}
    assert {f["payload"]["event_id"] for f in failures} == {first["id"], second["id"]}
    assert {f["payload"]["error"] for f in failures} == {"RuntimeError: boom"}
    assert TOOLS <= {tool.name for tool in tools.tools}


async def test_cascades_cut_by_depth(project: Project) -> None:
    with anyio.fail_after(60):
        async with _client(project, "support_modules:looping") as client:
            await _call(client, "emit_event", {"type": "loop.self"})
            await _call(client, "emit_event", {"type": "cyc.a"})
            await _call(client, "emit_event", {"type": "quux"})
            with anyio.fail_after(10):
                while (await _call(client, "query_events", {"type": "quux.seen"}))["total"] < 1:
                    await anyio.sleep(0.05)
                while (failed := await _call(client, "query_events", {"type": "event.failed"}))["total"] < 2:
                    await anyio.sleep(0.05)
            loops = await _call(client, "query_events", {"type": "loop.self", "limit": 1})
            cycle = await _call(client, "query_events", {"type": "cyc.*", "limit": 1})
            seen = await _call(client, "query_events", {"type": "quux.seen"})
            await client.list_tools()

    assert loops["total"] <= 17
    assert cycle["total"] <= 17
    assert seen["total"] == 1
    assert all("depth" in f["payload"]["reason"] for f in failed["events"])
    assert failed["total"] == 2


def test_stdout_carries_only_json_rpc(project: Project) -> None:
    project.write("src/a.py", "# @touchpoint alpha\n")
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "qa", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "emit_event", "arguments": {"type": "note.added", "payload": {"path": "src/a.py"}}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "list_touchpoints", "arguments": {}}},
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_server", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd=project.root, env={**os.environ, **_server_env(project, "support_modules:noisy")},
    )
    assert process.stdin is not None and process.stdout is not None
    for request in requests:
        process.stdin.write((json.dumps(request) + "\n").encode())
    process.stdin.flush()

    lines: list[bytes] = []
    answered: set[int] = set()
    while answered != {1, 2, 3, 4}:
        line = process.stdout.readline()
        assert line, "server closed stdout before answering"
        lines.append(line)
        answered.add(json.loads(line).get("id"))
    rest, stderr = process.communicate(timeout=30)
    lines.extend(rest.splitlines(keepends=True))

    messages = [json.loads(line) for line in lines]
    assert all(message["jsonrpc"] == "2.0" for message in messages)
    assert sorted(m["id"] for m in messages if "id" in m) == [1, 2, 3, 4]
    assert process.returncode == 0
    noise = stderr.decode()
    for text in ("handler says hi", "careful", "deprecated thing", "git version"):
        assert text in noise
    assert b"handler says hi" not in b"".join(lines)


async def test_errors_carry_their_message(project: Project) -> None:
    with anyio.fail_after(60):
        async with _client(project) as client:
            cursor = await client.call_tool("query_events", {"cursor": 99999999999999999999})
            position = await client.call_tool("query_events", {"since_position": 99999999999999999999})
            offset = await client.call_tool("list_touchpoints", {"offset": 99999999999999999999})
            payload = await client.call_tool("query_events", {"payload": {"path": 99999999999999999999}})
            since = await client.call_tool("query_events", {"since": "yesterday"})
            until = await client.call_tool("query_events", {"until": "2026-13-45T99:00:00Z"})
            completed = await client.call_tool("emit_event", {"type": "task.completed", "payload": {"task_id": "x2"}})
            failed = await client.call_tool("emit_event", {"type": "event.failed", "payload": {}})
            listed = await _call(client, "query_events", {"type": ["task.completed", "event.failed"]})

    for name, result in {"cursor": cursor, "since_position": position, "offset": offset, "payload": payload}.items():
        assert result.is_error, name
        assert name in result.content[0].text, (name, result.content[0].text)
        assert "9223372036854775807" in result.content[0].text, (name, result.content[0].text)
    assert since.is_error
    assert "invalid since 'yesterday'" in since.content[0].text
    assert "ISO 8601" in since.content[0].text
    assert until.is_error
    assert "invalid until '2026-13-45T99:00:00Z'" in until.content[0].text
    assert completed.is_error
    assert "cannot emit 'task.completed'" in completed.content[0].text
    assert "complete_task" in completed.content[0].text
    assert failed.is_error
    assert "cannot emit 'event.failed'" in failed.content[0].text
    assert listed["total"] == 0


async def test_time_filters_parse_offsets(project: Project) -> None:
    with anyio.fail_after(60):
        async with _client(project) as client:
            emitted = await _call(client, "emit_event", {"type": "note.added", "payload": {"text": "timed"}})
            [event] = (await _call(client, "query_events", {"type": "note.added"}))["events"]
            moment = datetime.fromisoformat(event["timestamp"])
            before = (moment - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=5))).isoformat()
            whole_second = event["timestamp"][:19] + "Z"
            naive = (moment - timedelta(seconds=1)).replace(tzinfo=None).isoformat()
            since_offset = await _call(client, "query_events", {"type": "note.added", "since": before})
            until_offset = await _call(client, "query_events", {"type": "note.added", "until": before})
            since_second = await _call(client, "query_events", {"type": "note.added", "since": whole_second})
            since_naive = await _call(client, "query_events", {"type": "note.added", "since": naive})

    assert event["id"] == emitted["id"]
    assert since_offset["total"] == 1
    assert until_offset["total"] == 0
    assert since_second["total"] == 1
    assert since_naive["total"] == 1


async def test_get_context_while_write_lock_held(project: Project) -> None:
    project.write("src/shop.py", "# @touchpoint checkout-total Sums the cart\ndef total():\n    return 0\n")
    project.run_hook({"session_id": "s-lock", "hook_event_name": "PostToolUse", "tool_name": "Write",
                      "tool_input": {"file_path": str(project.root / "src/shop.py")}, "tool_use_id": "toolu_l"})

    with anyio.fail_after(60):
        async with _client(project) as client:
            await _call(client, "list_touchpoints")
            holder = subprocess.Popen(
                [sys.executable, "-c", "import sqlite3, sys\n"
                 "connection = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                 "connection.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\nsys.stdin.readline()\n",
                 str(project.root / ".eventsync" / "events.db")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            try:
                assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
                first = await client.call_tool("get_context", {"name": "checkout-total"})
                second = await client.call_tool("get_context", {"name": "checkout-total"})
            finally:
                holder.communicate("\n", timeout=30)

    for result in (first, second):
        assert not result.is_error, result.content
        assert result.structured_content is not None
        assert "def total():" in result.structured_content["locations"][0]["code"]
    assert first.structured_content is not None and not first.structured_content["cached"]


def test_sigterm_stops_cleanly(project: Project) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "mcp_server", "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd=project.root, env={**os.environ, **_server_env(project)},
    )
    assert process.stderr is not None
    started: list[bytes] = []
    while b"first full index" not in (line := process.stderr.readline()):  # the lifespan has started its tasks
        assert line, b"".join(started).decode()
        started.append(line)

    process.send_signal(signal.SIGTERM)  # stdin stays open, as when Claude Code gives up waiting for the server
    stderr = process.stderr.read()  # returns once the process has exited
    process.wait(timeout=30)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.close()
    process.stdout.close()

    assert process.returncode == -signal.SIGTERM
    assert b"received SIGTERM; stopping" in stderr
    assert b"eventsync server stopped" in stderr


def _hold_write_lock(project: Project) -> subprocess.Popen[str]:
    """Start a second process that takes the log's write lock and keeps it until a line arrives on its stdin."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n"
         "connection = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "connection.execute('BEGIN IMMEDIATE')\nprint('locked', flush=True)\nsys.stdin.readline()\n",
         str(project.root / ".eventsync" / "events.db")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


async def test_starts_while_write_lock_held(project: Project) -> None:
    project.write("src/shop.py", "# @touchpoint checkout-total Sums the cart\ndef total():\n    return 0\n")
    with anyio.fail_after(60):
        async with _client(project) as client:
            await _call(client, "list_touchpoints")

    holder = _hold_write_lock(project)
    try:
        with anyio.fail_after(60):
            async with _client(project) as client:
                touchpoints = await _call(client, "list_touchpoints")
                events = await _call(client, "query_events", {"type": "module.loaded", "limit": 100})
    finally:
        holder.communicate("\n", timeout=30)

    assert [t["name"] for t in touchpoints["touchpoints"]] == ["checkout-total"]
    assert events["total"] > 0


async def test_announces_modules_after_lock_released(project: Project) -> None:
    with anyio.fail_after(60):
        async with _client(project) as client:
            await _call(client, "log_stats")

    holder = _hold_write_lock(project)
    released = False
    try:
        with anyio.fail_after(120):
            async with _client(project, "support_modules:exploding") as client:
                before = await _call(client, "query_events", {"type": "module.loaded", "limit": 100})
                holder.communicate("\n", timeout=30)
                released = True
                while True:
                    after = await _call(client, "query_events", {"type": "module.loaded", "limit": 100})
                    if any(event["payload"]["name"] == "support_modules:exploding" for event in after["events"]):
                        break
                    await anyio.sleep(0.1)
    finally:
        if not released:
            holder.communicate("\n", timeout=30)

    assert all(event["payload"]["name"] != "support_modules:exploding" for event in before["events"])
