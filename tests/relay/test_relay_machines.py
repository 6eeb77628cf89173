"""Two eventsync machines sharing one project through the NATS JetStream server on 127.0.0.1:4222."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import git
import pytest
from team_support import (
    SYSTEM_NATS,
    Machine,
    RunningRelay,
    consumer_drained,
    delete_stream,
    make_machines,
    new_token,
    require_system_nats,
    stream_messages,
    unique_settings,
    wait_settled,
    wait_until,
    write_payload,
)

from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter
from mcp_server.store.sqlite import SQLiteEventLog
from mcp_server.team import Relay

pytestmark = pytest.mark.anyio

AUTH_MODULE = "# @touchpoint auth-login Checks a password against the stored hash\ndef login(user, password):\n    return False\n"


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


async def test_hook_edit_reaches_other_machine(machines: tuple[Machine, Machine]) -> None:
    a, b = machines
    a.project.write("src/auth.py", AUTH_MODULE)

    async with anyio.create_task_group() as group:
        relay_a = await RunningRelay(a, group).start()
        relay_b = await RunningRelay(b, group).start()

        hook = await anyio.to_thread.run_sync(a.project.run_hook, write_payload(a.project, "src/auth.py", "toolu_auth"))
        await wait_until(lambda: b.count("file.saved", path="src/auth.py") == 1, 30, "B stores A's file.saved")

        # The file itself reaches B through git, which fires no hook there.
        repository = git.Repo(a.project.root)
        repository.index.add(["src/auth.py"])
        repository.index.commit("Add login")
        git.Repo(b.project.root).remotes.origin.pull()
        rows, total = await anyio.to_thread.run_sync(lambda: b.runtime.list_touchpoints(name="auth-login"))

        await anyio.to_thread.run_sync(a.runtime.catch_up)
        await wait_settled([SYSTEM_NATS], [(a, relay_a), (b, relay_b)])
        group.cancel_scope.cancel()

    assert hook.returncode == 0
    saved_on_a = a.runtime.query_events(EventFilter(types=("file.saved",))).events
    saved_on_b = b.runtime.query_events(EventFilter(types=("file.saved",))).events
    assert [event.id for event in saved_on_b] == [event.id for event in saved_on_a]
    assert saved_on_b[0].metadata["origin"] == "machine-a"
    assert "origin" not in saved_on_a[0].metadata
    assert total == 1
    assert (rows[0].path, rows[0].line) == ("src/auth.py", 1)
    assert b.count("touchpoint.added", name="auth-login") == 1
    assert a.count("touchpoint.added", name="auth-login") == 1


async def test_events_flow_both_ways_without_echo(machines: tuple[Machine, Machine]) -> None:
    a, b = machines
    from_a = a.runtime.emit("note.added", {"text": "from a"}, source="test")
    from_b = b.runtime.emit("note.added", {"text": "from b"}, source="test")

    async with anyio.create_task_group() as group:
        relay_a = await RunningRelay(a, group).start()
        relay_b = await RunningRelay(b, group).start()
        await wait_settled([SYSTEM_NATS], [(a, relay_a), (b, relay_b)])
        group.cancel_scope.cancel()

    assert sorted(a.ids("note.added")) == sorted([from_a.id, from_b.id])
    assert sorted(b.ids("note.added")) == sorted([from_a.id, from_b.id])
    assert a.runtime.log.get(from_b.id).metadata["origin"] == "machine-b"
    assert b.runtime.log.get(from_a.id).metadata["origin"] == "machine-a"
    assert relay_a.statistics.echoes == 1
    assert relay_b.statistics.echoes == 1
    assert relay_a.statistics.published == 1
    assert relay_b.statistics.published == 1


async def test_remote_events_never_republished(machines: tuple[Machine, Machine]) -> None:
    _, b = machines
    remote = {"id": "0190a6b0-0000-7000-8000-000000000001", "type": "note.added", "timestamp": "2026-01-01T00:00:00.000000Z",
              "source": "test", "payload": {"text": "applied earlier"}, "metadata": {"origin": "machine-z"}}
    b.runtime.log.append([remote])
    local = b.runtime.emit("note.added", {"text": "captured here"}, source="test")

    async with anyio.create_task_group() as group:
        relay_b = await RunningRelay(b, group).start()
        await wait_settled([SYSTEM_NATS], [(b, relay_b)])
        group.cancel_scope.cancel()

    published = await stream_messages(SYSTEM_NATS, b.settings)
    assert [headers["Nats-Msg-Id"] for _, headers, _ in published] == [local.id]
    assert [body["metadata"]["origin"] for _, _, body in published] == ["machine-b"]


async def test_relay_survives_unreachable_server(machines: tuple[Machine, Machine], caplog: pytest.LogCaptureFixture) -> None:
    a, _ = machines
    offline = Relay(a.runtime.log, a.settings.with_changes(servers=("nats://127.0.0.1:1",)))

    async with anyio.create_task_group() as group:
        await group.start(offline.run)
        await wait_until(lambda: offline.statistics.last_error is not None, 30, "the first session fails")
        group.cancel_scope.cancel()

    assert offline.statistics.sessions == 0
    assert "relay session ended" in caplog.text
    assert "reconnecting in" in caplog.text


async def test_remote_events_wait_for_locked_log(machines: tuple[Machine, Machine], caplog: pytest.LogCaptureFixture) -> None:
    a, b = machines
    note = a.runtime.emit("note.added", {"text": "arrives while B's log is locked"}, source="test")
    impatient = SQLiteEventLog(b.runtime.log.path, busy_timeout=0.1)
    blocker = sqlite3.connect(b.runtime.log.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    relay_b = Relay(impatient, b.settings)

    try:
        async with anyio.create_task_group() as group:
            await RunningRelay(a, group).start()
            await group.start(relay_b.run)
            await wait_until(lambda: "relay could not store 1 remote events" in caplog.text, 30, "B's relay hits the lock")
            blocker.execute("ROLLBACK")
            await wait_until(lambda: b.runtime.log.get(note.id) is not None, 30, "B stores the note")
            group.cancel_scope.cancel()
    finally:
        blocker.close()
        impatient.close()

    assert b.ids("note.added") == [note.id]
    assert relay_b.statistics.applied == 1


async def test_resync_reads_whole_stream(machines: tuple[Machine, Machine], tmp_path: Path) -> None:
    a, b = machines
    notes = [a.runtime.emit("note.added", {"text": f"note {index}"}, source="test").id for index in range(3)]
    async with anyio.create_task_group() as group:
        relay_a = await RunningRelay(a, group).start()
        relay_b = await RunningRelay(b, group).start()
        await wait_settled([SYSTEM_NATS], [(a, relay_a), (b, relay_b)])
        group.cancel_scope.cancel()

    # Machine B's log is replaced by an empty one, as after restoring an old backup. Its consumer
    # has acknowledged every message, so only a resync brings them back.
    drained = await consumer_drained([SYSTEM_NATS], b.settings)
    restored = Runtime(str(tmp_path / "restored"), environ={})
    resyncing = Relay(restored.log, b.settings, resync=True)
    try:
        async with anyio.create_task_group() as group:
            await group.start(resyncing.run)
            await wait_until(lambda: len(list(restored.log.iterate())) == 3, 30, "the resynced log has every note")
            group.cancel_scope.cancel()
        after_resync = sorted(event.id for event in restored.log.iterate())
    finally:
        restored.close()

    assert drained
    assert after_resync == sorted(notes)
