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
