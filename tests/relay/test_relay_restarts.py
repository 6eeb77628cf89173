"""The relay across restarts of itself and of NATS, on a nats-server of the test's own; nothing is lost or doubled."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from team_support import (
    Machine,
    NatsServer,
    RunningRelay,
    make_machines,
    new_token,
    require_nats_binary,
    stream_messages,
    unique_settings,
    wait_settled,
    wait_until,
)

from mcp_server.events import make_event
from mcp_server.store.base import EventFilter

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    require_nats_binary()
    own = NatsServer(name="restarts", folder=tmp_path / "nats")
    own.start()
    try:
        await own.wait_ready()
        yield own
    finally:
        own.stop()


@pytest.fixture
def machines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: NatsServer) -> tuple[Machine, Machine]:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("EVENTSYNC_HOME", raising=False)
    token = new_token()
    a, b = make_machines(
        tmp_path,
        unique_settings((server.url,), "machine-a", token=token),
        unique_settings((server.url,), "machine-b", token=token),
    )
    yield a, b
    a.runtime.close()
    b.runtime.close()


def _append_notes(machine: Machine, start: int, count: int) -> list[str]:
    events = [make_event("note.added", {"text": f"note {index}"}, source="test") for index in range(start, start + count)]
    machine.runtime.log.append(events)
    return [event["id"] for event in events]


async def test_relay_restart_mid_stream(server: NatsServer, machines: tuple[Machine, Machine]) -> None:
    a, b = machines
    written = _append_notes(a, 0, 400)

    async with anyio.create_task_group() as group:
        relay_a, relay_b = RunningRelay(a, group), RunningRelay(b, group)
        await relay_a.start()
        await relay_b.start()
        await wait_until(lambda: b.count("note.added") >= 50, 30, "B stores the first notes")
        relay_a.stop()
        relay_b.stop()
        stopped_at = b.count("note.added")

        written += _append_notes(a, 400, 200)
        restarted_a = await relay_a.start()
        restarted_b = await relay_b.start()
        await wait_settled([server.url], [(a, restarted_a), (b, restarted_b)])
        group.cancel_scope.cancel()

    stream = await stream_messages(server.url, a.settings)
    assert stopped_at < len(written)
    assert sorted(b.ids("note.added")) == sorted(written)
    assert sorted(a.ids("note.added")) == sorted(written)
    assert Counter(headers["Nats-Msg-Id"] for _, headers, _ in stream) == Counter(written)


async def test_nats_restart_mid_stream(
    server: NatsServer, machines: tuple[Machine, Machine], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mcp_server.team.relay")
    a, b = machines
    written = _append_notes(a, 0, 300)

    async with anyio.create_task_group() as group:
        relay_a = await RunningRelay(a, group).start()
        relay_b = await RunningRelay(b, group).start()
        await wait_until(lambda: b.count("note.added") >= 50, 30, "B stores the first notes")

        server.kill()
        killed_at = b.count("note.added")
        written += _append_notes(a, 300, 300)
        server.start()
        await server.wait_ready()

        written += _append_notes(a, 600, 100)
        await wait_settled([server.url], [(a, relay_a), (b, relay_b)], timeout=60)
        group.cancel_scope.cancel()

    stream = await stream_messages(server.url, a.settings)
    assert killed_at < len(written)
    assert "relay lost its connection to NATS" in caplog.text
    assert "relay reconnected to NATS" in caplog.text
    assert sorted(b.ids("note.added")) == sorted(written)
    assert sorted(a.ids("note.added")) == sorted(written)
    assert Counter(headers["Nats-Msg-Id"] for _, headers, _ in stream) == Counter(written)


async def test_capture_offline_then_catch_up(tmp_path: Path, server: NatsServer, machines: tuple[Machine, Machine]) -> None:
    a, b = machines
    server.stop()

    async with anyio.create_task_group() as group:
        relay_a = await RunningRelay(a, group).start()
        relay_b = await RunningRelay(b, group).start()
        written = _append_notes(a, 0, 50)
        await wait_until(lambda: relay_a.statistics.last_error is not None, 30, "A's relay notices NATS is down")

        server.start()
        await server.wait_ready()
        await wait_settled([server.url], [(a, relay_a), (b, relay_b)], timeout=60)
        group.cancel_scope.cancel()

    assert sorted(b.ids("note.added")) == sorted(written)


async def test_oversized_event_recorded_not_blocking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_nats_binary()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    small = NatsServer(name="small-payload", folder=tmp_path / "small", config="max_payload: 4096\n")
    small.start()
    try:
        await small.wait_ready()
        token = new_token()
        a, b = make_machines(
            tmp_path,
            unique_settings((small.url,), "machine-a", token=token),
            unique_settings((small.url,), "machine-b", token=token),
        )
        large = make_event("note.added", {"text": "x" * 8000}, source="test")
        small_note = make_event("note.added", {"text": "fits"}, source="test")
        a.runtime.log.append([large, small_note])

        async with anyio.create_task_group() as group:
            relay_a = await RunningRelay(a, group).start()
            relay_b = await RunningRelay(b, group).start()
            await wait_settled([small.url], [(a, relay_a), (b, relay_b)])
            group.cancel_scope.cancel()

        failures = a.runtime.log.query(EventFilter(types=("event.failed",))).events
        on_b = b.ids("note.added")
        a.runtime.close()
        b.runtime.close()
    finally:
        small.stop()

    assert on_b == [small_note["id"]]
    assert [(event.payload["event_id"], event.payload["handler"]) for event in failures] == [(large["id"], "relay")]
    assert "exceeds the NATS server's max_payload of 4096 bytes" in failures[0].payload["error"]
