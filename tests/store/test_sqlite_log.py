"""SQLite-specific behaviour of the event log: schema, WAL, error translation, consumer state."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server.errors import ClosedError, StoreError, StoreLockedError
from mcp_server.events import make_event
from mcp_server.store.sqlite import SCHEMA_VERSION, SQLiteEventLog


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SQLiteEventLog]:
    opened = SQLiteEventLog(str(tmp_path / "events.db"))
    yield opened
    opened.close()


def _event(event_type: str = "file.saved", **payload: object) -> dict:
    return make_event(event_type, dict(payload), source="test", session_id=str(payload.get("session", "s1")))


def _event(event_type: str = "file.saved", **payload: object) -> dict:
    return make_event(event_type, dict(payload), source="test", session_id=str(payload.get("session", "s1")))


def test_checkpoint_commits_with_state(log: SQLiteEventLog) -> None:
    log.append([_event(path="a")])
    with log.transaction() as connection:
        connection.execute("CREATE TABLE state (value TEXT)")
        connection.execute("INSERT INTO state VALUES ('applied')")
        log.set_checkpoint(connection, "consumer", 1)

    with pytest.raises(RuntimeError):
        with log.transaction() as connection:
            connection.execute("INSERT INTO state VALUES ('lost')")
            log.set_checkpoint(connection, "consumer", 99)
            raise RuntimeError("crash before commit")

    assert log.checkpoint("consumer") == 1
    assert log.connection.execute("SELECT value FROM state").fetchall() == [("applied",)]


def test_schema_version_recorded(log: SQLiteEventLog) -> None:
    assert log.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert log.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_newer_schema_rejected(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(StoreError, match="upgrade eventsync"):
        SQLiteEventLog(str(path))


def test_corrupt_file_reported(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    path.write_bytes(b"this is not a database" * 100)

    with pytest.raises(StoreError, match=str(path)):
        SQLiteEventLog(str(path))


def test_locked_log_translated(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    SQLiteEventLog(str(path)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    log: SQLiteEventLog | None = None
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        log = SQLiteEventLog(str(path), busy_timeout=0.05)
        with pytest.raises(StoreLockedError, match="held the write lock"):
            log.append([_event(path="a")])
    finally:
        holder.communicate("", timeout=10)
        if log is not None:
            log.close()


def test_closed_log_rejects_use(tmp_path: Path) -> None:
    log = SQLiteEventLog(str(tmp_path / "events.db"))
    log.close()

    with pytest.raises(ClosedError, match="is closed"):
        log.head()


def test_filtered_total_capped(log: SQLiteEventLog) -> None:
    from mcp_server.store.base import EventFilter
    from mcp_server.store.sqlite import COUNT_CAP

    log.append([_event("file.saved", path="same") for _ in range(COUNT_CAP + 5)])

    page = log.query(EventFilter(payload_equals=(("path", "same"),)), limit=3)
    exact = log.query(EventFilter(types=("file.saved",)), limit=3)

    assert page.total == COUNT_CAP
    assert page.total_capped is True
    assert exact.total == COUNT_CAP + 5
    assert exact.total_capped is False


def test_counts_follow_deletes(log: SQLiteEventLog) -> None:
    from mcp_server.store.base import EventFilter

    log.append([_event("note.added", n=i) for i in range(10)])
    log.delete_events(("note.added",), protect_after=log.head(), keep_latest=3)

    assert log.query(EventFilter(types=("note.added",))).total == 3


def test_deleted_file_written_back(log: SQLiteEventLog) -> None:
    import os

    log.append([_event(path="before")])
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(log.path + suffix):
            os.unlink(log.path + suffix)

    recovered = log.recover_if_removed()
    log.append([_event(path="after")])
    reopened = SQLiteEventLog(log.path)
    try:
        paths = [event.payload["path"] for event in reopened.read_after(0)]
    finally:
        reopened.close()

    assert recovered is True
    assert paths == ["before", "after"]
    assert log.recover_if_removed() is False


def test_replaced_file_merged_back(log: SQLiteEventLog) -> None:
    import os

    log.append([_event(path="kept")])
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(log.path + suffix):
            os.unlink(log.path + suffix)
    intruder = SQLiteEventLog(log.path)
    intruder.append([_event(path="written-meanwhile")])
    intruder.close()

    assert log.recover_if_removed() is True
    assert sorted(event.payload["path"] for event in log.read_after(0)) == ["kept", "written-meanwhile"]


def _second(second: int) -> str:
    return f"2026-11-01T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}.000000Z"


def _at(second: int, event_type: str = "file.saved", **payload: object) -> dict:
    event = _event(event_type, **payload)
    event["timestamp"] = _second(second)
    return event


def _positions(log: SQLiteEventLog, **conditions: object) -> list[int]:
    from mcp_server.store.base import EventFilter

    return [event.position for event in log.query(EventFilter(**conditions), limit=500, descending=False).events]  # type: ignore[arg-type]


# The events at positions 4, 6, 8 and 10 arrive after later ones.
ARRIVAL_SECONDS = [10, 20, 50, 30, 60, 40, 70, 20, 80, 10]


def _v2_log(path: Path, seconds: list[int]) -> None:
    """Write a log in schema version 2, as eventsync releases before the time-order table left it."""
    import json

    from mcp_server.store.sqlite import _MIGRATIONS

    connection = sqlite3.connect(path)
    for target, statements in _MIGRATIONS:
        if target <= 2:
            for statement in statements:
                connection.execute(statement)
    for index, second in enumerate(seconds):
        payload = {"path": f"f{index}", "text": "checkout" if index % 2 else "refund"}
        connection.execute(
            "INSERT INTO events (id, type, timestamp, source, session_id, payload, metadata) "
            "VALUES (?, 'file.saved', ?, 'test', 's1', ?, '{}')",
            (f"event-{index}", _second(second), json.dumps(payload)),
        )
    connection.execute("PRAGMA user_version = 2")
    connection.commit()
    connection.close()


def test_v2_log_migrated(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    _v2_log(path, ARRIVAL_SECONDS)

    log = SQLiteEventLog(str(path))
    try:
        version = log.connection.execute("PRAGMA user_version").fetchone()[0]
        until = _positions(log, until=_second(30))
        since = _positions(log, since=_second(40))
        text = _positions(log, text="checkout")
        listed = [row[0] for row in log.connection.execute("SELECT position FROM events_out_of_order ORDER BY position")]
    finally:
        log.close()

    assert version == SCHEMA_VERSION
    assert until == [1, 2, 4, 8, 10]
    assert since == [3, 5, 6, 7, 9]
    assert text == [2, 4, 6, 8, 10]
    assert listed == [4, 6, 8, 10]


def test_time_bounds_inside_transaction(log: SQLiteEventLog) -> None:
    log.append([_at(second) for second in ARRIVAL_SECONDS[:5]])
    _positions(log, since=_second(30))

    with log.transaction() as connection:
        log.append_in(connection, [_at(second) for second in ARRIVAL_SECONDS[5:]])
        until = _positions(log, until=_second(30))
        since = _positions(log, since=_second(40))

    assert until == [1, 2, 4, 8, 10]
    assert since == [3, 5, 6, 7, 9]


def test_since_after_deleting_later_event(log: SQLiteEventLog) -> None:
    log.append([_at(10, "note.old"), _at(5, "note.kept"), _at(20, "note.kept")])
    _positions(log, since=_second(5))
    log.delete_events(("note.old",), protect_after=log.head())
    log.append([_at(7, "note.kept")])

    assert _positions(log, since=_second(5)) == [2, 3, 4]
    assert _positions(log, since=_second(6)) == [3, 4]
    assert _positions(log, until=_second(7)) == [2, 4]


def test_since_after_deleting_every_earlier_event(log: SQLiteEventLog) -> None:
    log.append([_at(10, "note.old")])
    _positions(log, since=_second(5))
    log.delete_events(("note.old",), protect_after=log.head())
    log.append([_at(5, "note.kept"), _at(6, "note.kept")])

    assert _positions(log, since=_second(5)) == [2, 3]
    assert _positions(log, until=_second(5)) == [2]


def test_time_and_text_totals_capped(log: SQLiteEventLog) -> None:
    from mcp_server.store.base import EventFilter
    from mcp_server.store.sqlite import COUNT_CAP

    # Every tenth event arrives 100 seconds late.
    seconds = [index - 100 if index % 10 == 0 and index >= 100 else index for index in range(COUNT_CAP + 5)]
    log.append([_at(second, text="checkout") for second in seconds])
    expected = sum(1 for second in seconds if second <= 500)

    everything = log.query(EventFilter(until=_second(10_000)), limit=3)
    part = log.query(EventFilter(until=_second(500)), limit=3)
    text = log.query(EventFilter(text="checkout", since=_second(0)), limit=3)

    assert (everything.total, everything.total_capped) == (COUNT_CAP, True)
    assert (part.total, part.total_capped) == (expected, False)
    assert (text.total, text.total_capped) == (COUNT_CAP, True)
