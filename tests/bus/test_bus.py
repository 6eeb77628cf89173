"""The event bus: subscriptions, order, isolation of failures, causation limits."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from mcp_server.bus import EventBus
from mcp_server.store.base import EventFilter, StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[EventBus]:
    log = SQLiteEventLog(str(tmp_path / "events.db"))
    bus = EventBus(log, source="test")
    async with anyio.create_task_group() as group:
        await group.start(bus.run)
        yield bus
        group.cancel_scope.cancel()
    log.close()


def _failures(bus: EventBus) -> list[StoredEvent]:
    return bus.log.query(EventFilter(types=("event.failed",)), descending=False).events


async def test_exact_and_wildcard_subscriptions(bus: EventBus) -> None:
    seen: dict[str, list[str]] = {"exact": [], "star": [], "rest": [], "all": []}
    bus.subscribe("task.created", lambda e: seen["exact"].append(e.type))
    bus.subscribe("task.*", lambda e: seen["star"].append(e.type))
    bus.subscribe("task.>", lambda e: seen["rest"].append(e.type))
    bus.subscribe(">", lambda e: seen["all"].append(e.type))

    for event_type in ("task.created", "task.progress.updated", "file.saved"):
        await bus.publish(event_type, {})
    with anyio.fail_after(5):
        await bus.wait_idle()

    assert seen["exact"] == ["task.created"]
    assert seen["star"] == ["task.created"]
    assert seen["rest"] == ["task.created", "task.progress.updated"]
    assert seen["all"] == ["task.created", "task.progress.updated", "file.saved"]


async def test_each_subscription_in_log_order(bus: EventBus) -> None:
    received: list[int] = []

    async def record(event: StoredEvent) -> None:
        await anyio.lowlevel.checkpoint()
        received.append(int(event.payload["n"]))

    bus.subscribe("counter.tick", record)
    for n in range(50):
        bus.publish_nowait("counter.tick", {"n": n})
    with anyio.fail_after(5):
        await bus.wait_idle()

    assert received == list(range(50))


async def test_subscriptions_run_concurrently(bus: EventBus) -> None:
    slow_started = anyio.Event()
    release = anyio.Event()
    order: list[str] = []

    async def slow(event: StoredEvent) -> None:
        slow_started.set()
        await release.wait()
        order.append("slow")

    async def fast(event: StoredEvent) -> None:
        await slow_started.wait()
        order.append("fast")
        release.set()

    bus.subscribe("job.run", slow)
    bus.subscribe("job.run", fast)
    await bus.publish("job.run", {})
    with anyio.fail_after(5):
        await bus.wait_idle()

    assert order == ["fast", "slow"]


async def test_failing_handler_isolated(bus: EventBus) -> None:
    before: list[str] = []
    after: list[str] = []

    def explode(event: StoredEvent) -> None:
        raise RuntimeError("boom")

    bus.subscribe("file.saved", lambda e: before.append(e.payload["path"]), name="indexer")
    bus.subscribe("file.saved", explode)
    bus.subscribe("file.saved", lambda e: after.append(e.payload["path"]), name="search")

    first = await bus.publish("file.saved", {"path": "src/a.py"})
    second = await bus.publish("file.saved", {"path": "src/b.py"})
    with anyio.fail_after(5):
        await bus.wait_idle()

    assert before == ["src/a.py", "src/b.py"]
    assert after == ["src/a.py", "src/b.py"]
    failures = _failures(bus)
    assert [f.payload["event_id"] for f in failures] == [first.id, second.id]
    assert {f.payload["handler"] for f in failures} == {"test_failing_handler_isolated.<locals>.explode"}
    assert {f.payload["error"] for f in failures} == {"RuntimeError: boom"}
    assert {f.metadata["causation_id"] for f in failures} == {first.id, second.id}


async def test_failure_of_failure_handler_not_recorded(bus: EventBus) -> None:
    def explode(event: StoredEvent) -> None:
        raise ValueError("also broken")

    bus.subscribe(">", explode)
    await bus.publish("note.added", {})
    with anyio.fail_after(5):
        await bus.wait_idle()

    assert len(_failures(bus)) == 1


async def test_handler_timeout_recorded(tmp_path: Path) -> None:
    log = SQLiteEventLog(str(tmp_path / "events.db"))
    bus = EventBus(log, handler_timeout=0.05)
    never = anyio.Event()

    async def stuck(event: StoredEvent) -> None:
        await never.wait()

    bus.subscribe("job.run", stuck)
    async with anyio.create_task_group() as group:
        await group.start(bus.run)
        await bus.publish("job.run", {})
        with anyio.fail_after(5):
            await bus.wait_idle()
        group.cancel_scope.cancel()

    [failure] = log.query(EventFilter(types=("event.failed",))).events
    assert failure.payload["error_type"] == "TimeoutError"
    log.close()


async def test_self_emit_cut_at_depth(bus: EventBus) -> None:
    seen: list[str] = []
    bus.subscribe("loop.self", lambda e: bus.publish_nowait("loop.self", {}))
    bus.subscribe("quux", lambda e: seen.append("quux"))

    await bus.publish("loop.self", {})
    with anyio.fail_after(5):
        await bus.wait_idle()
    await bus.publish("quux", {})
    with anyio.fail_after(5):
        await bus.wait_idle()

    loops = bus.log.query(EventFilter(types=("loop.self",))).total
    assert loops == bus.max_depth + 1
    [cut] = _failures(bus)
    assert cut.payload["reason"] == "causation depth limit"
    assert cut.payload["refused_type"] == "loop.self"
    assert seen == ["quux"]


async def test_cycle_cut_at_depth(bus: EventBus) -> None:
    async def forward(event: StoredEvent) -> None:
        following = {"cyc.a": "cyc.b", "cyc.b": "cyc.c", "cyc.c": "cyc.a"}[event.type]
        await bus.publish(following, {})

    bus.subscribe("cyc.*", forward)
    with anyio.fail_after(5):
        await bus.publish("cyc.a", {})
        await bus.wait_idle()

    assert bus.log.query(EventFilter(types=("cyc.*",))).total == bus.max_depth + 1
    assert len(_failures(bus)) == 1


async def test_causation_links(bus: EventBus) -> None:
    bus.subscribe("order.placed", lambda e: bus.publish_nowait("invoice.created", {}))

    root = await bus.publish("order.placed", {})
    with anyio.fail_after(5):
        await bus.wait_idle()

    [child] = bus.log.query(EventFilter(types=("invoice.created",))).events
    assert child.metadata["causation_id"] == root.id
    assert child.metadata["correlation_id"] == root.id
    assert child.metadata["depth"] == 1


async def test_sync_handler_runs_off_loop(bus: EventBus) -> None:
    threads: list[int] = []
    bus.subscribe("job.run", lambda e: threads.append(threading.get_ident()))

    await bus.publish("job.run", {})
    with anyio.fail_after(5):
        await bus.wait_idle()

    assert threads
    assert threads[0] != threading.get_ident()


async def test_events_from_other_writers_delivered(bus: EventBus, tmp_path: Path) -> None:
    seen: list[str] = []
    bus.subscribe("file.saved", lambda e: seen.append(e.payload["path"]))
    other = SQLiteEventLog(bus.log.path)
    from mcp_server.events import make_event

    other.append([make_event("file.saved", {"path": "from-hook.py"}, source="hook")])
    other.close()
    with anyio.fail_after(5):
        await bus.wait_idle()

    assert seen == ["from-hook.py"]


async def test_handler_publishing_into_full_queue(tmp_path: Path) -> None:
    log = SQLiteEventLog(str(tmp_path / "events.db"))
    bus = EventBus(log, queue_size=1)
    echoed: list[int] = []

    async def echo(event: StoredEvent) -> None:
        if event.payload.get("n", 0) < 3:
            for _ in range(600):
                await bus.publish("echo.ping", {"n": event.payload.get("n", 0) + 1})
        echoed.append(event.payload.get("n", 0))

    bus.subscribe("echo.ping", echo)
    async with anyio.create_task_group() as group:
        await group.start(bus.run)
        with anyio.fail_after(20):
            await bus.publish("echo.ping", {"n": 2})
            await bus.wait_idle()
        group.cancel_scope.cancel()
    log.close()

    assert len(echoed) == 601
