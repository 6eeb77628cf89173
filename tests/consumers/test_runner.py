"""Durable consumers: exactly-once effect, leases, retries, parking, coalescing and depth limits."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_server.consumers import MAX_ATTEMPTS, ConsumerRunner
from mcp_server.events import MAX_CAUSATION_DEPTH, make_event
from mcp_server.store.base import EventFilter, StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog


class CountingProjection:
    """Counts applications per event id; a second application of one event violates the primary key."""

    name = "counting"
    version = 1
    subscriptions = ("work.*",)
    depends_on: tuple[str, ...] = ()

    def __init__(self, failures: dict[str, list[BaseException]] | None = None) -> None:
        self.failures = failures or {}
        self.prepared: list[str] = []

    def create(self, connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY, n INTEGER)")

    def drop(self, connection: sqlite3.Connection) -> None:
        connection.execute("DROP TABLE IF EXISTS applied")

    def prepare(self, event: StoredEvent) -> Any:
        self.prepared.append(event.id)
        pending = self.failures.get(str(event.payload.get("key")), [])
        if pending:
            raise pending.pop(0)
        return event.payload.get("n")

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: Any) -> list[dict[str, Any]]:
        connection.execute("INSERT INTO applied VALUES (?, ?)", (event.id, prepared))
        return []

    @staticmethod
    def coalesce_key(event: StoredEvent) -> str | None:
        key = event.payload.get("burst")
        return f"burst:{key}" if key else None


class EchoProjection(CountingProjection):
    """Emits the type it consumes, so every event causes another: an endless cascade without a limit."""

    name = "echo"
    subscriptions = ("echo.ping",)

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: Any) -> list[dict[str, Any]]:
        return [make_event("echo.ping", {}, source="test", cause=event)]


@pytest.fixture
def log(tmp_path: Path) -> SQLiteEventLog:
    opened = SQLiteEventLog(str(tmp_path / "events.db"))
    yield opened
    opened.close()


def _append(log: SQLiteEventLog, count: int, **payload: Any) -> None:
    log.append([make_event("work.item", {"n": i, **payload}, source="test") for i in range(count)])


def _applied(log: SQLiteEventLog) -> int:
    return int(log.connection.execute("SELECT count(*) FROM applied").fetchone()[0])


def test_resumes_from_checkpoint(log: SQLiteEventLog) -> None:
    projection = CountingProjection()
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    _append(log, 5)
    runner.catch_up(projection)
    runner.release()

    _append(log, 3)
    restarted = ConsumerRunner(log)
    handled = restarted.catch_up(projection)

    assert handled == 3
    assert _applied(log) == 8
    assert log.checkpoint("counting") == log.head()


def test_transient_error_retried(log: SQLiteEventLog) -> None:
    projection = CountingProjection({"flaky": [OSError("disk busy"), OSError("disk busy")]})
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    _append(log, 1, key="flaky")

    runner.catch_up(projection)

    failures = log.query(EventFilter(types=("event.failed",)), descending=False).events
    assert [failure.payload["attempt"] for failure in failures] == [1, 2]
    assert _applied(log) == 1
    assert log.parked() == []


def test_persistent_error_parked_then_replayed(log: SQLiteEventLog) -> None:
    projection = CountingProjection({"bad": [OSError("gone")] * MAX_ATTEMPTS})
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    _append(log, 1, key="bad")
    _append(log, 2)

    runner.catch_up(projection)

    failures = log.query(EventFilter(types=("event.failed",)), descending=False).events
    assert [failure.payload["attempt"] for failure in failures] == [1, 2, 3]
    assert failures[-1].payload["parked"] is True
    [parked] = log.parked("counting")
    assert parked["error"] == "OSError: gone"
    assert _applied(log) == 2
    assert runner.statistics(projection).parked == 1

    assert runner.replay_parked(projection, str(parked["event_id"])) is True
    assert log.parked() == []
    assert _applied(log) == 3


def test_bad_input_parked_at_once(log: SQLiteEventLog) -> None:
    projection = CountingProjection({"broken": [ValueError("no path")]})
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    _append(log, 1, key="broken")

    runner.catch_up(projection)

    [failure] = log.query(EventFilter(types=("event.failed",))).events
    assert failure.payload["attempt"] == 1
    assert failure.payload["parked"] is True


def test_burst_coalesced(log: SQLiteEventLog) -> None:
    projection = CountingProjection()
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    _append(log, 10, burst="src/a.py")

    runner.catch_up(projection)

    assert _applied(log) == 1
    assert log.connection.execute("SELECT n FROM applied").fetchone()[0] == 9
    stats = runner.statistics(projection)
    assert stats.coalesced == 9
    assert stats.lag == 0
    assert log.head() == 10


def test_emit_chain_cut_at_depth(log: SQLiteEventLog) -> None:
    projection = EchoProjection()
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    log.append([make_event("echo.ping", {}, source="test")])

    for _ in range(MAX_CAUSATION_DEPTH + 5):
        runner.catch_up(projection)

    assert log.query(EventFilter(types=("echo.ping",))).total == MAX_CAUSATION_DEPTH + 1
    [cut] = log.query(EventFilter(types=("event.failed",))).events
    assert cut.payload["reason"] == "causation depth limit"


def test_replay_range_keeps_checkpoint(log: SQLiteEventLog) -> None:
    projection = CountingProjection()
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    _append(log, 4)
    runner.catch_up(projection)
    log.connection.execute("DELETE FROM applied WHERE n >= 2")

    replayed = runner.replay(projection, 2, 4)

    assert replayed == 2
    assert _applied(log) == 4
    assert log.checkpoint("counting") == 4


def test_lease_blocks_second_runner(log: SQLiteEventLog) -> None:
    first, second = ConsumerRunner(log), ConsumerRunner(log)

    assert log.acquire_lease("counting", first.holder, 30) is True
    assert log.acquire_lease("counting", second.holder, 30) is False
    log.release_lease("counting", first.holder)
    assert log.acquire_lease("counting", second.holder, 30) is True


def test_expired_lease_taken_over(log: SQLiteEventLog) -> None:
    first, second = ConsumerRunner(log), ConsumerRunner(log)

    assert log.acquire_lease("counting", first.holder, 30, now=0) is True
    assert log.acquire_lease("counting", second.holder, 30) is True


def test_lease_of_dead_process_taken_over(log: SQLiteEventLog) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    import socket

    log.acquire_lease("counting", f"{socket.gethostname()}:{holder.pid}:dead", 30)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)

    assert log.acquire_lease("counting", ConsumerRunner(log).holder, 30) is True


WORKER = """
import sys
sys.path.insert(0, {tests!r})
from test_runner import CountingProjection
from mcp_server.consumers import ConsumerRunner
from mcp_server.store.sqlite import SQLiteEventLog
log = SQLiteEventLog({path!r})
runner = ConsumerRunner(log)
runner.ensure(CountingProjection())
print(runner.catch_up(CountingProjection()), flush=True)
runner.release()
"""


def test_two_processes_apply_each_event_once(log: SQLiteEventLog, tmp_path: Path) -> None:
    runner = ConsumerRunner(log)
    runner.ensure(CountingProjection())
    _append(log, 300)
    script = WORKER.format(tests=str(Path(__file__).parent), path=log.path)

    workers = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
               for _ in range(3)]
    handled = [int(worker.communicate(timeout=120)[0].strip()) for worker in workers]

    assert all(worker.returncode == 0 for worker in workers)
    assert sum(handled) == 300
    assert _applied(log) == 300
    assert log.checkpoint("counting") == 300


def test_lease_released_when_caught_up(log: SQLiteEventLog) -> None:
    projection = CountingProjection()
    idle, busy = ConsumerRunner(log), ConsumerRunner(log)
    idle.ensure(projection)
    _append(log, 3)

    idle.catch_up(projection)
    leases_after = log.leases()
    _append(log, 2)
    handled = busy.catch_up(projection)

    assert leases_after == {}
    assert handled == 2
    assert _applied(log) == 5


def test_rebuild_does_not_repeat_failures(log: SQLiteEventLog) -> None:
    projection = CountingProjection({"broken": [ValueError("bad payload"), ValueError("bad payload")]})
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    _append(log, 1, key="broken")
    runner.catch_up(projection)
    failures_before = log.query(EventFilter(types=("event.failed",))).total

    runner.reset(projection)
    runner.catch_up(projection)

    assert failures_before == 1
    assert log.query(EventFilter(types=("event.failed",))).total == 1
    assert len(log.parked("counting")) == 1


class ApplyFailingProjection(CountingProjection):
    """Fails in ``apply`` after writing a row, for events whose ``key`` names a failure.

    ``"rollback"`` makes SQLite itself roll back the whole transaction (``INSERT OR ROLLBACK``
    on a duplicate key), as an interrupted write can; other keys raise the listed errors.
    """

    name = "counting"

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: Any) -> list[dict[str, Any]]:
        connection.execute("INSERT INTO applied VALUES (?, ?)", (event.id, prepared))
        key = str(event.payload.get("key"))
        if key == "rollback":
            connection.execute("INSERT OR ROLLBACK INTO applied VALUES (?, ?)", (event.id, prepared))
        pending = self.failures.get(key, [])
        if pending:
            raise pending.pop(0)
        return []

    def prepare(self, event: StoredEvent) -> Any:
        return event.payload.get("n")


def _append_keys(log: SQLiteEventLog, keys: list[str | None]) -> list[StoredEvent]:
    return log.append([make_event("work.item", {"n": n, "key": key}, source="test") for n, key in enumerate(keys)])


def test_batch_commits_once_per_read(log: SQLiteEventLog) -> None:
    projection = CountingProjection()
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    _append(log, 100)
    statements: list[str] = []
    log.connection.set_trace_callback(statements.append)

    runner.catch_up(projection)

    log.connection.set_trace_callback(None)
    assert _applied(log) == 100
    # One lease taken, one batch, one lease released: not one transaction per event.
    assert statements.count("COMMIT") <= 4


def test_failed_apply_rolls_back_alone(log: SQLiteEventLog) -> None:
    projection = ApplyFailingProjection({"bad": [ValueError("bad payload")]})
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    events = _append_keys(log, [None, None, "bad", None, None])

    handled = runner.catch_up(projection)

    assert handled == 5
    applied = {row[0] for row in log.connection.execute("SELECT event_id FROM applied")}
    assert applied == {event.id for event in events} - {events[2].id}
    [failure] = log.query(EventFilter(types=("event.failed",))).events
    assert failure.payload["attempt"] == 1
    assert failure.payload["event_id"] == events[2].id
    assert [entry["event_id"] for entry in log.parked("counting")] == [events[2].id]
    assert log.checkpoint("counting") == events[-1].position


def test_transient_apply_failure_retried_once(log: SQLiteEventLog) -> None:
    projection = ApplyFailingProjection({"flaky": [OSError("disk busy")]})
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    _append_keys(log, [None, "flaky", None])

    runner.catch_up(projection)

    failures = log.query(EventFilter(types=("event.failed",)), descending=False).events
    assert [failure.payload["attempt"] for failure in failures] == [1]
    assert _applied(log) == 3
    assert log.parked() == []


def test_rolled_back_batch_applied_one_by_one(log: SQLiteEventLog) -> None:
    projection = ApplyFailingProjection()
    runner = ConsumerRunner(log)
    runner.ensure(projection)
    events = _append_keys(log, [None, None, "rollback", None])

    runner.catch_up(projection)

    applied = {row[0] for row in log.connection.execute("SELECT event_id FROM applied")}
    assert applied == {events[0].id, events[1].id, events[3].id}
    [failure] = log.query(EventFilter(types=("event.failed",))).events
    assert failure.payload["event_id"] == events[2].id
    assert failure.payload["error_type"] == "IntegrityError"
    assert failure.payload["attempt"] == 1
    assert log.checkpoint("counting") == events[-1].position
