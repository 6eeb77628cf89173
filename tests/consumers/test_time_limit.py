"""Time limit of durable consumers: long SQL is interrupted, slow prepare is cut, overruns commit nothing."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_server.consumers import MAX_ATTEMPTS, ConsumerRunner
from mcp_server.events import make_event
from mcp_server.store.base import EventFilter, StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog

LIMIT = 0.3
"""Seconds per attempt in these tests. Every slow handler here overruns it by construction, not by timing."""

# Counts far enough that only an interrupt stops it within a test run (10**8 rows took about 20 s here).
ENDLESS_COUNT = (
    "WITH RECURSIVE numbers(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < 100000000) "
    "SELECT count(*) FROM numbers"
)
ENDLESS_INSERT = (
    "INSERT INTO applied WITH RECURSIVE numbers(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM numbers "
    "WHERE n < 100000000) SELECT 'row-' || n, n FROM numbers"
)


class SlowProjection:
    """Projection that records each event in ``applied``. Events whose payload has ``slow`` overrun in the named way."""

    name = "slow"
    version = 1
    subscriptions = ("work.item",)
    depends_on: tuple[str, ...] = ()

    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.enabled = True

    def create(self, connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY, n INTEGER)")

    def drop(self, connection: sqlite3.Connection) -> None:
        connection.execute("DROP TABLE IF EXISTS applied")

    def prepare(self, event: StoredEvent) -> Any:
        if self.enabled and event.payload.get("slow") == "prepare":
            self.release.wait(120)
        return event.payload.get("n")

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: Any) -> list[dict[str, Any]]:
        started = time.monotonic()
        connection.execute("INSERT INTO applied VALUES (?, ?)", (event.id, prepared))
        slow = event.payload.get("slow") if self.enabled else None
        if slow == "read":
            connection.execute(ENDLESS_COUNT).fetchone()
        elif slow == "write":
            connection.execute(ENDLESS_INSERT)
        elif slow == "python":
            while time.monotonic() < started + 1.5 * LIMIT:
                pass
        return [make_event("work.done", {"n": prepared}, source="test", cause=event)]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SQLiteEventLog]:
    opened = SQLiteEventLog(str(tmp_path / "events.db"))
    yield opened
    opened.close()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Event that lets a blocked ``prepare`` return at the end of the test, so its abandoned thread exits."""
    event = threading.Event()
    yield event
    event.set()


def _runner(log: SQLiteEventLog, projection: SlowProjection, timeout: float = LIMIT) -> ConsumerRunner:
    runner = ConsumerRunner(log, handler_timeout=timeout)
    runner.ensure(projection)
    return runner


def _append(log: SQLiteEventLog, *payloads: dict[str, Any]) -> list[StoredEvent]:
    return log.append([make_event("work.item", payload, source="test") for payload in payloads])


def _applied(log: SQLiteEventLog) -> list[int]:
    return [int(row[0]) for row in log.connection.execute("SELECT n FROM applied ORDER BY n")]


def _failures(log: SQLiteEventLog) -> list[StoredEvent]:
    return log.query(EventFilter(types=("event.failed",)), descending=False).events


@pytest.mark.parametrize("slow", ["read", "write"])
def test_long_sql_interrupted_and_parked(log: SQLiteEventLog, release: threading.Event, slow: str) -> None:
    projection = SlowProjection(release)
    runner = _runner(log, projection)
    [stuck, last] = _append(log, {"n": 1, "slow": slow}, {"n": 2})

    runner.catch_up(projection)

    failures = _failures(log)
    assert [failure.payload["attempt"] for failure in failures] == list(range(1, MAX_ATTEMPTS + 1))
    assert {failure.payload["error_type"] for failure in failures} == {"HandlerTimeoutError"}
    assert {failure.payload["event_id"] for failure in failures} == {stuck.id}
    assert failures[-1].payload["parked"] is True
    [parked] = log.parked("slow")
    assert parked["event_id"] == stuck.id
    assert str(parked["error"]).startswith(f"HandlerTimeoutError: slow.apply ran past the {LIMIT:g} s time limit")
    assert _applied(log) == [2]
    assert log.query(EventFilter(types=("work.done",))).total == 1
    assert log.checkpoint("slow") == last.position
    # The runner used this thread's connection, and a deadline left on it would interrupt this count.
    assert log.connection.execute(ENDLESS_COUNT.replace("100000000", "200000")).fetchone()[0] == 200000


def test_timed_out_event_replayed(log: SQLiteEventLog, release: threading.Event) -> None:
    projection = SlowProjection(release)
    runner = _runner(log, projection)
    [stuck] = _append(log, {"n": 1, "slow": "write"})
    runner.catch_up(projection)
    projection.enabled = False

    replayed = runner.replay_parked(projection, stuck.id)

    assert replayed is True
    assert log.parked() == []
    assert _applied(log) == [1]


def test_slow_prepare_cut(log: SQLiteEventLog, release: threading.Event) -> None:
    projection = SlowProjection(release)
    runner = _runner(log, projection)
    # The stuck event sits inside one batch, so the events prepared before it must still be applied.
    [_, stuck, last] = _append(log, {"n": 1}, {"n": 2, "slow": "prepare"}, {"n": 3})

    runner.catch_up(projection)

    failures = _failures(log)
    assert [failure.payload["attempt"] for failure in failures] == list(range(1, MAX_ATTEMPTS + 1))
    assert {failure.payload["error_type"] for failure in failures} == {"HandlerTimeoutError"}
    [parked] = log.parked("slow")
    assert parked["event_id"] == stuck.id
    assert str(parked["error"]).startswith(f"HandlerTimeoutError: slow.prepare ran past the {LIMIT:g} s time limit")
    assert _applied(log) == [1, 3]
    assert log.checkpoint("slow") == last.position


def test_inline_prepare_overrun_detected(log: SQLiteEventLog, release: threading.Event) -> None:
    class Inline(SlowProjection):
        prepare_inline = True

        def prepare(self, event: StoredEvent) -> Any:
            if event.payload.get("slow") == "prepare":
                started = time.monotonic()
                while time.monotonic() < started + 1.5 * LIMIT:
                    pass
            return event.payload.get("n")

    projection = Inline(release)
    runner = _runner(log, projection)
    [stuck, last] = _append(log, {"n": 1, "slow": "prepare"}, {"n": 2})

    runner.catch_up(projection)

    [parked] = log.parked("slow")
    assert parked["event_id"] == stuck.id
    assert str(parked["error"]).startswith("HandlerTimeoutError: slow.prepare ran past")
    assert parked["attempts"] == MAX_ATTEMPTS
    assert _applied(log) == [2]
    assert log.checkpoint("slow") == last.position


def test_python_overrun_rolled_back(log: SQLiteEventLog, release: threading.Event) -> None:
    projection = SlowProjection(release)
    runner = _runner(log, projection)
    [stuck, last] = _append(log, {"n": 1, "slow": "python"}, {"n": 2})

    runner.catch_up(projection)

    [parked] = log.parked("slow")
    assert parked["event_id"] == stuck.id
    assert str(parked["error"]).startswith("HandlerTimeoutError: slow.apply ran past")
    assert parked["attempts"] == MAX_ATTEMPTS
    assert _applied(log) == [2]
    assert log.query(EventFilter(types=("work.done",))).total == 1
    assert log.checkpoint("slow") == last.position


@pytest.mark.parametrize("timeout", [LIMIT, 0.0])
def test_fast_projection_unaffected(log: SQLiteEventLog, release: threading.Event, timeout: float) -> None:
    projection = SlowProjection(release)
    runner = _runner(log, projection, timeout)
    *_, last = _append(log, *({"n": n} for n in range(1, 51)))

    handled = runner.catch_up(projection)

    assert handled == 50
    assert _applied(log) == list(range(1, 51))
    assert _failures(log) == []
    assert log.parked() == []
    assert log.query(EventFilter(types=("work.done",))).total == 50
    assert log.checkpoint("slow") == last.position


def test_prepare_error_keeps_its_type(log: SQLiteEventLog, release: threading.Event) -> None:
    class Failing(SlowProjection):
        def prepare(self, event: StoredEvent) -> Any:
            raise ValueError(f"no path in {event.id}")

    projection = Failing(release)
    runner = _runner(log, projection)
    [bad] = _append(log, {"n": 1})

    runner.catch_up(projection)

    [failure] = _failures(log)
    assert failure.payload["error_type"] == "ValueError"
    assert failure.payload["error"] == f"ValueError: no path in {bad.id}"
    assert failure.payload["parked"] is True
