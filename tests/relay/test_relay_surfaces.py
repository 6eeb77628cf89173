"""The relay as people start it: inside the MCP server, and as the ``eventsync relay`` command."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from team_support import (
    SYSTEM_NATS,
    Machine,
    RunningRelay,
    delete_stream,
    make_machines,
    new_token,
    require_system_nats,
    stream_messages,
    unique_settings,
)

pytestmark = pytest.mark.anyio

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def machines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Machine, Machine]]:
    require_system_nats()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("EVENTSYNC_HOME", raising=False)
    token = new_token()
    a, b = make_machines(
        tmp_path,
        unique_settings((SYSTEM_NATS,), "machine-a", token=token),
        unique_settings((SYSTEM_NATS,), "machine-b", token=token),
    )
    yield a, b
    a.runtime.close()
    b.runtime.close()
    await delete_stream(SYSTEM_NATS, a.settings)


def _team_env(machine: Machine) -> dict[str, str]:
    settings = machine.settings
    return {
        "CLAUDE_PROJECT_DIR": str(machine.project.root),
        "PYTHONPATH": str(TESTS),
        "XDG_STATE_HOME": os.environ.get("XDG_STATE_HOME", ""),
        "EVENTSYNC_NATS_URL": SYSTEM_NATS,
        "EVENTSYNC_PROJECT": settings.project,
        "EVENTSYNC_MACHINE_ID": settings.machine_id,
        "EVENTSYNC_NATS_STREAM": settings.stream,
        "EVENTSYNC_NATS_SUBJECT_PREFIX": settings.subject_prefix,
    }


async def _query(client: Client, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool("query_events", arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def test_server_relays_when_configured(machines: tuple[Machine, Machine]) -> None:
    a, b = machines
    from_b = b.runtime.emit("note.added", {"text": "from machine b"}, source="test")
    parameters = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server", "serve"], env=_team_env(a), cwd=str(a.project.root)
    )
    found: dict[str, Any] = {}

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group, Client(parameters, mode="legacy") as client:
            await RunningRelay(b, group).start()
            while not found.get("events"):
                found = await _query(client, {"type": "note.added"})
                await anyio.sleep(0.05)
            group.cancel_scope.cancel()

    assert [event["id"] for event in found["events"]] == [from_b.id]
    assert found["events"][0]["metadata"]["origin"] == "machine-b"


async def test_server_ignores_invalid_team_settings(machines: tuple[Machine, Machine], tmp_path: Path) -> None:
    from mcp_server.team.relay import configured_relay

    a, _ = machines
    environ = {"EVENTSYNC_NATS_URL": SYSTEM_NATS, "EVENTSYNC_PROJECT": "Not A Key"}

    relay = configured_relay(a.runtime.log, root=str(a.project.root), data_dir=str(tmp_path), environ=environ)

    assert relay is None


async def test_relay_command_publishes_and_stops(machines: tuple[Machine, Machine], tmp_path: Path) -> None:
    a, _ = machines
    note = a.runtime.emit("note.added", {"text": "from the command"}, source="test")
    command = [sys.executable, "-m", "mcp_server", "relay", "--project", str(a.project.root)]
    stdout_path, stderr_path = tmp_path / "relay.out", tmp_path / "relay.err"

    async def published() -> bool:
        try:
            messages = await stream_messages(SYSTEM_NATS, a.settings)
        except nats.js.errors.NotFoundError:  # the relay creates the stream when it connects
            return False
        return [headers.get("Nats-Msg-Id") for _, headers, _ in messages] == [note.id]

    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = await anyio.open_process(command, env={**os.environ, **_team_env(a)}, stdout=stdout, stderr=stderr)
        try:
            with anyio.fail_after(30):
                while not await published():
                    assert process.returncode is None, stderr_path.read_text()
                    await anyio.sleep(0.05)
                process.send_signal(signal.SIGTERM)
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert process.returncode == 0
    assert stdout_path.read_bytes() == b""
    assert "relay stopped after publishing 1 and applying 0 events" in stderr_path.read_text()


async def test_server_relay_stops_on_sigterm(machines: tuple[Machine, Machine], tmp_path: Path) -> None:
    a, _ = machines
    note = a.runtime.emit("note.added", {"text": "from the server"}, source="test")
    command = [sys.executable, "-m", "mcp_server", "serve"]
    stderr_path = tmp_path / "serve.err"

    async def published() -> bool:
        try:
            messages = await stream_messages(SYSTEM_NATS, a.settings)
        except nats.js.errors.NotFoundError:  # the relay creates the stream when it connects
            return False
        # The server publishes its own start-up events (module.loaded, schema.updated) too.
        return note.id in [headers.get("Nats-Msg-Id") for _, headers, _ in messages]

    with stderr_path.open("wb") as stderr:
        # stdin stays open, as when Claude Code stops a server that does not exit on its own
        process = await anyio.open_process(command, env={**os.environ, **_team_env(a)}, stderr=stderr)
        try:
            with anyio.fail_after(30):
                while not await published():
                    assert process.returncode is None, stderr_path.read_text()
                    await anyio.sleep(0.05)
                process.send_signal(signal.SIGTERM)
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()

    log = stderr_path.read_text()
    assert process.returncode == -signal.SIGTERM
    assert "relay stopped after publishing" in log
    assert "eventsync server stopped" in log
