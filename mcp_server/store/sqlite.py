"""The embedded event log on SQLite.

One database file (``<data folder>/events.db``) contains the log, the checkpoints
of durable consumers and the tables of the projections built from the log, so
a consumer commits its state and its checkpoint in one transaction.

Guarantees:

* **Positions** come from an ``AUTOINCREMENT`` key, so they strictly increase
  and are never reused, even after retention deletes old rows. SQLite has one
  writer at a time, so a reader never sees position ``n + 1`` before ``n``.
* **Idempotent append**: an event whose id is already stored is skipped, and
  :meth:`SQLiteEventLog.append` returns only the events it stored.
* **Atomic batches**: one call to ``append`` is one transaction.
* **Concurrency**: WAL mode (readers never block the writer), a busy timeout
  for writers, and ``BEGIN IMMEDIATE`` for every write so two writers never
  deadlock upgrading a read lock. ``synchronous=NORMAL``: a committed event
  survives any process crash; the last commits may be lost on power failure.
* **Bounded WAL**: ``journal_size_limit`` truncates the WAL file after each
  checkpoint, and :meth:`checkpoint_wal` lets an idle server truncate it.

The schema is versioned with ``PRAGMA user_version`` and migrated forward on
open. Standard library only, so the CLI starts without pydantic or mcp.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from mcp_server import subjects
from mcp_server.errors import ClosedError, StoreError, StoreLockedError
from mcp_server.store.base import (
    INDEXED_PAYLOAD_FIELDS,
    MAX_PAGE_SIZE,
    EventFilter,
    EventLog,
    QueryPage,
    StoredEvent,
    validate_event,
)
from mcp_server.store.sqlite_query import (
    count_matches,
    event_text_query,
    plan,
    read_page,
    record_time_order,
    repair_time_order,
)

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SCHEMA_VERSION", "SQLiteEventLog", "event_text_query", "fts_query"]

logger = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT = 10.0
"""Seconds a writer waits for the write lock; transactions here last milliseconds."""

WAL_SIZE_LIMIT = 4 * 1024 * 1024
"""Bytes the WAL file is truncated to after a checkpoint, so long sessions keep it small."""

_MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """CREATE TABLE events (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,
                timestamp TEXT NOT NULL,
                source TEXT NOT NULL,
                session_id TEXT,
                correlation_id TEXT,
                causation_id TEXT,
                payload TEXT NOT NULL,
                metadata TEXT NOT NULL
            )""",
            "CREATE INDEX events_by_type ON events (type, position)",
            "CREATE INDEX events_by_session ON events (session_id, position)",
            "CREATE INDEX events_by_source ON events (source, position)",
            "CREATE INDEX events_by_correlation ON events (correlation_id, position)",
            "CREATE INDEX events_by_timestamp ON events (timestamp)",
            "CREATE TABLE event_types (type TEXT PRIMARY KEY, count INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
            """CREATE TRIGGER events_count_insert AFTER INSERT ON events BEGIN
                 INSERT INTO event_types (type, count) VALUES (new.type, 1)
                 ON CONFLICT (type) DO UPDATE SET count = count + 1;
               END""",
            """CREATE TRIGGER events_count_delete AFTER DELETE ON events BEGIN
                 UPDATE event_types SET count = count - 1 WHERE type = old.type;
               END""",
            """CREATE TABLE checkpoints (
                consumer TEXT PRIMARY KEY,
                position INTEGER NOT NULL,
                updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            ) WITHOUT ROWID""",
            """CREATE TABLE projections (
                name TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                replay_until INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID""",
        ),
    ),
)
_MIGRATIONS += (
    (
        2,
        tuple(
            f"CREATE INDEX events_by_payload_{field} ON events (json_extract(payload, '$.{field}'), position)"
            for field in INDEXED_PAYLOAD_FIELDS
        )
        + (
            "CREATE VIRTUAL TABLE events_text USING fts5(type, payload, tokenize = 'unicode61')",
            "CREATE TABLE events_text_state (indexed_through INTEGER NOT NULL)",
            "INSERT INTO events_text_state VALUES (0)",
            """CREATE TABLE leases (
                consumer TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                expires_at REAL NOT NULL
            ) WITHOUT ROWID""",
            """CREATE TABLE parked (
                consumer TEXT NOT NULL,
                event_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                event_type TEXT NOT NULL,
                error TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                parked_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                PRIMARY KEY (consumer, event_id)
            ) WITHOUT ROWID""",
        ),
    ),
)
_MIGRATIONS += (
    (
        3,
        (
            # Events whose timestamp is earlier than that of an earlier position (see store.sqlite_query).
            # Time-bounded queries fill it on demand, so an existing log migrates without a scan.
            "CREATE TABLE events_out_of_order (position INTEGER PRIMARY KEY, timestamp TEXT NOT NULL)",
            "CREATE TABLE events_time_order (checked_through INTEGER NOT NULL, latest_timestamp TEXT NOT NULL)",
            "INSERT INTO events_time_order VALUES (0, '')",
        ),
    ),
)
SCHEMA_VERSION = _MIGRATIONS[-1][0]

COUNT_CAP = 1_000
"""Most matches a filtered query counts; beyond it ``total`` is this cap and ``total_capped`` is set.

Counting every match of a broad filter on a large log would cost more than the page itself.
"""

TEXT_INDEX_BATCH = 5000
"""Events added to the full-text index per transaction when a text query catches it up."""

TIME_ORDER_BATCH = 20_000
"""Events checked for out-of-order timestamps per transaction when a time-bounded query catches up."""

_COLUMNS = "position, id, type, timestamp, source, payload, metadata"
_INSERT = (
    "INSERT OR IGNORE INTO events (id, type, timestamp, source, session_id, correlation_id, causation_id, payload, metadata)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _stored(event: dict[str, object], row: tuple[object, ...], position: int) -> StoredEvent:
    """Build the stored form of ``event`` from its insert parameters, whose first four are checked strings."""
    return StoredEvent(
        position,
        row[0],  # type: ignore[arg-type]
        row[1],  # type: ignore[arg-type]
        row[2],  # type: ignore[arg-type]
        row[3],  # type: ignore[arg-type]
        event.get("payload") or {},  # type: ignore[arg-type]
        event.get("metadata") or {},  # type: ignore[arg-type]
    )


def _row_to_event(row: Sequence[object]) -> StoredEvent:
    position, event_id, event_type, timestamp, source, payload, metadata = row
    return StoredEvent(
        position=int(position),  # type: ignore[call-overload]
        id=str(event_id),
        type=str(event_type),
        timestamp=str(timestamp),
        source=str(source),
        payload=json.loads(str(payload)),
        metadata=json.loads(str(metadata)),
    )


def fts_query(text: str) -> str:
    """Turn free text into an FTS5 query: every word must match, the last one as a prefix.

    Touchpoint search uses this. Event queries use :func:`event_text_query`,
    where only a word written with a trailing ``*`` is a prefix.

    Words are quoted, so FTS5 operators and punctuation in the input are taken
    literally instead of failing as syntax errors.
    """
    words = [word.replace('"', '""') for word in text.split() if word.strip('"')]
    if not words:
        return ""
    terms = [f'"{word}"' for word in words[:-1]]
    terms.append(f'"{words[-1]}"*')
    return " ".join(terms)


def _holder_alive(holder: str) -> bool:
    """Return False only when ``holder`` names a process on this host that no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SQLiteEventLog(EventLog):
    """The event log in one SQLite file, safe to share between threads and processes.

    Each thread gets its own connection. Writes go through :meth:`transaction`,
    which opens ``BEGIN IMMEDIATE`` and commits on success.
    """

    def __init__(self, path: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        """Open (creating if needed) the log at ``path`` and migrate its schema.

        Raises:
            StoreError: the file or its folder cannot be created, or the schema is newer than this release.
        """
        self.path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self._generation = 0

        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for event log {path!r}: {exc}; check its permissions") from exc
        self._migrate()
        self._identity = self._file_identity()

    # -- connections and transactions -------------------------------------------------

    @property
    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use.

        Raises:
            ClosedError: the log was closed.
            StoreError: the database cannot be opened.
        """
        if self._closed:
            raise ClosedError(f"event log {self.path!r} is closed; open a new SQLiteEventLog")
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None or getattr(self._local, "generation", 0) != self._generation:
            connection = self._open_connection()
            self._local.connection = connection
            self._local.generation = self._generation
        return connection

    def _open_connection(self) -> sqlite3.Connection:
        with self._translate_errors("open"):
            connection = sqlite3.connect(
                self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        with self._connections_lock:
            self._connections.append(connection)
        return connection

    @contextmanager
    def _translate_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreLockedError(
                    f"could not {action} event log {self.path!r}: another process held the write lock for more "
                    f"than {self._busy_timeout:g} s; retry, or find the stuck process with 'fuser {shlex.quote(self.path)}'"
                ) from exc
            raise StoreError(f"could not {action} event log {self.path!r}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"could not {action} event log {self.path!r}: {exc}; if the file is corrupt, move it away and "
                "run 'eventsync rebuild' after restoring a backup"
            ) from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in one write transaction and commit it, or roll back on error.

        Raises:
            StoreLockedError: the write lock could not be taken within the busy timeout.
            StoreError: SQLite failed.
        """
        connection = self.connection
        with self._translate_errors("write"):
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                # SQLite has already rolled back after some errors, such as an interrupted write.
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _migrate(self) -> None:
        connection = self.connection
        with self._translate_errors("migrate"):
            connection.execute("PRAGMA journal_mode=WAL")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"event log {self.path!r} has schema version {version}, newer than this eventsync "
                f"supports ({SCHEMA_VERSION}); upgrade eventsync"
            )
        if version == SCHEMA_VERSION:
            return

        with self.transaction() as connection:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            for target, statements in _MIGRATIONS:
                if target <= version:
                    continue
                for statement in statements:
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {int(target)}")
                logger.info("migrated event log %s to schema version %d", self.path, target)

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            status = os.stat(self.path)
        except OSError:
            return None
        return status.st_dev, status.st_ino

    def recover_if_removed(self) -> bool:
        """Write the log back to its path if the file was deleted or replaced while open; return True if it was.

        Open connections still read the removed file, so ``VACUUM INTO`` copies
        every event accepted so far to the path, and later connections use that
        copy. A file someone put in its place is kept aside, not overwritten.
        """
        if self._file_identity() == self._identity:
            return False
        logger.error("event log %s was deleted or replaced while in use; writing it back from the open copy", self.path)
        source = self.connection
        aside = None
        if os.path.exists(self.path):
            aside = f"{self.path}.replaced-{int(time.time())}"
            os.replace(self.path, aside)
            logger.error("moved the file found at %s to %s; its events are merged back", self.path, aside)
        for suffix in ("-wal", "-shm"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass
        with self._translate_errors("recover"):
            source.execute("VACUUM INTO ?", (self.path,))
        self._generation += 1
        self._identity = self._file_identity()
        with self._translate_errors("recover"):
            self.connection.execute("PRAGMA journal_mode=WAL")
        if aside is not None:
            self._merge_events_from(aside)
        return True

    def _merge_events_from(self, other_path: str) -> None:
        """Append the events of another log file that this one lacks (the append is idempotent on id)."""
        try:
            other = sqlite3.connect(f"file:{other_path}?mode=ro", uri=True)
            try:
                rows = other.execute(
                    "SELECT id, type, timestamp, source, payload, metadata FROM events ORDER BY position"
                ).fetchall()
            finally:
                other.close()
        except sqlite3.DatabaseError as exc:
            logger.error("could not read events from %s to merge them: %s", other_path, exc)
            return
        keys = ("id", "type", "timestamp", "source")
        self.append(
            dict(zip(keys, row[:4], strict=True)) | {"payload": json.loads(row[4]), "metadata": json.loads(row[5])}
            for row in rows
        )

    def close(self) -> None:
        """Close every connection; later use raises :class:`ClosedError`."""
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()

    # -- append ----------------------------------------------------------------------

    def append(self, events: Iterable[dict[str, object]]) -> list[StoredEvent]:
        """Append ``events`` atomically and return those that were not already stored.

        Raises:
            InvalidEventError: an event is malformed; nothing is stored.
            StoreLockedError: the write lock could not be taken.
        """
        batch = list(events)
        if not batch:
            return []
        with self.transaction() as connection:
            return self.append_in(connection, batch)

    def append_in(self, connection: sqlite3.Connection, events: Iterable[dict[str, object]]) -> list[StoredEvent]:
        """Append ``events`` inside the caller's open transaction (see :meth:`transaction`)."""
        batch = list(events)
        rows = [validate_event(event) for event in batch]
        if not rows:
            return []
        if len(rows) == 1:
            cursor = connection.execute(_INSERT, rows[0])
            return [_stored(batch[0], rows[0], int(cursor.lastrowid or 0))] if cursor.rowcount == 1 else []

        # One executemany is what makes batches cheap. The write lock is held, so the positions
        # above the previous maximum belong to this batch. When every row went in, AUTOINCREMENT
        # numbered them consecutively after the sequence, so nothing needs reading back.
        sequence = connection.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        previous = int(sequence[0]) if sequence else 0
        cursor = connection.executemany(_INSERT, rows)
        if cursor.rowcount == len(rows):
            return [_stored(event, row, previous + offset) for offset, (event, row) in enumerate(zip(batch, rows), 1)]
        positions = dict(
            connection.execute("SELECT id, position FROM events WHERE position > ? ORDER BY position", (previous,))
        )
        stored: list[StoredEvent] = []
        for event, row in zip(batch, rows):
            position = positions.pop(row[0], None)
            if position is not None:
                stored.append(_stored(event, row, int(position)))
        return stored

    # -- reading ---------------------------------------------------------------------

    def head(self) -> int:
        """Return the position of the newest event, or 0 for an empty log."""
        with self._translate_errors("read"):
            row = self.connection.execute("SELECT max(position) FROM events").fetchone()
        return int(row[0] or 0)

    def get(self, event_id: str) -> StoredEvent | None:
        """Return the event with ``event_id``, or None."""
        with self._translate_errors("read"):
            row = self.connection.execute(f"SELECT {_COLUMNS} FROM events WHERE id = ?", (event_id,)).fetchone()
        return _row_to_event(row) if row else None

    def read_after(self, position: int, *, limit: int = MAX_PAGE_SIZE, types: Sequence[str] = ()) -> list[StoredEvent]:
        """Return up to ``limit`` events after ``position`` in log order, optionally of matching types."""
        clauses, parameters = self._type_clause(types)
        clauses.insert(0, "position > ?")
        parameters.insert(0, position)
        sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(clauses)} ORDER BY position LIMIT ?"
        with self._translate_errors("read"):
            rows = self.connection.execute(sql, (*parameters, limit)).fetchall()
        return [_row_to_event(row) for row in rows]

    def known_types(self) -> list[str]:
        """Return every event type ever stored, sorted."""
        with self._translate_errors("read"):
            rows = self.connection.execute("SELECT type FROM event_types ORDER BY type").fetchall()
        return [str(row[0]) for row in rows]

    def _type_clause(self, patterns: Sequence[str]) -> tuple[list[str], list[object]]:
        """Turn type patterns into ``type IN (...)`` over the known types, which the index serves."""
        if not patterns:
            return [], []
        for pattern in patterns:
            subjects.validate_pattern(pattern)
        matching = self._matching_types(self.known_types(), patterns)
        if not matching:
            return ["0"], []
        return [f"type IN ({', '.join('?' * len(matching))})"], list(matching)

    @staticmethod
    def _matching_types(known: list[str], patterns: Sequence[str]) -> list[str]:
        return [event_type for event_type in known if any(subjects.matches(p, event_type) for p in patterns)]

    def _index_text(self) -> None:
        """Add events appended since the last text query to the full-text index.

        The index is filled on demand rather than by a trigger, so appends,
        which the hook path and every module pay for, stay as fast as plain inserts.
        """
        # Most queries find nothing to add; reading first spares them the write lock.
        with self._translate_errors("read"):
            indexed = int(self.connection.execute("SELECT indexed_through FROM events_text_state").fetchone()[0])
        if indexed >= self.head():
            return
        while True:
            with self.transaction() as connection:
                indexed = int(connection.execute("SELECT indexed_through FROM events_text_state").fetchone()[0])
                rows = connection.execute(
                    "SELECT position, type, payload FROM events WHERE position > ? ORDER BY position LIMIT ?",
                    (indexed, TEXT_INDEX_BATCH),
                ).fetchall()
                if not rows:
                    return
                connection.executemany("INSERT INTO events_text (rowid, type, payload) VALUES (?, ?, ?)", rows)
                connection.execute("UPDATE events_text_state SET indexed_through = ?", (rows[-1][0],))

    def _track_time_order(self) -> None:
        """List the out-of-order timestamps among events appended since the last time-bounded query.

        Filled on demand, like the full-text index, so appends stay plain
        inserts. Inside a caller's transaction it is left as it is, because the
        plan also reads the events not checked yet, only more slowly.
        """
        with self._translate_errors("read"):
            checked = int(self.connection.execute("SELECT checked_through FROM events_time_order").fetchone()[0])
        if checked >= self.head() or self.connection.in_transaction:
            return
        more = True
        while more:
            with self.transaction() as connection:
                more = record_time_order(connection, TIME_ORDER_BATCH)

    @contextmanager
    def _read_transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block's reads in one transaction, so the plan, the page and the count see the same log."""
        connection = self.connection
        if connection.in_transaction:
            yield connection
            return
        connection.execute("BEGIN")
        try:
            yield connection
        finally:
            if connection.in_transaction:
                connection.execute("COMMIT")

    def query(
        self, query: EventFilter, *, limit: int = 50, cursor: int | None = None, descending: bool = True
    ) -> QueryPage:
        """Return one page of events matching ``query``, in position order.

        Pages run newest first when ``descending`` (the default), else oldest
        first. ``limit`` is capped at :data:`MAX_PAGE_SIZE`. See
        :mod:`mcp_server.store.sqlite_query` for how each filter is read.
        """
        limit = max(1, min(int(limit), MAX_PAGE_SIZE))
        query.validate()
        if query.text is not None and event_text_query(query.text):
            self._index_text()
        if query.since is not None or query.until is not None:
            self._track_time_order()

        with self._translate_errors("query"), self._read_transaction() as connection:
            type_counts = {str(name): int(count) for name, count in connection.execute("SELECT type, count FROM event_types")}
            types = self._matching_types(sorted(type_counts), query.types) if query.types else None
            checked = int(connection.execute("SELECT checked_through FROM events_time_order").fetchone()[0])
            branches = plan(connection, query, types=types, type_counts=type_counts, checked_through=checked)
            rows = read_page(connection, branches, limit=limit + 1, cursor=cursor, descending=descending)
            if query == EventFilter(types=query.types):
                total = sum(count for name, count in type_counts.items() if types is None or name in types)
                capped = False
            else:
                total, capped = count_matches(connection, branches, COUNT_CAP)

        events = [_row_to_event(row) for row in rows[:limit]]
        next_cursor = events[-1].position if len(rows) > limit else None
        return QueryPage(events=events, next_cursor=next_cursor, total=total, total_capped=capped)

    # -- checkpoints and projections ----------------------------------------------------

    def checkpoint(self, consumer: str, connection: sqlite3.Connection | None = None) -> int:
        """Return the last position ``consumer`` has processed (0 if none)."""
        with self._translate_errors("read"):
            row = (connection or self.connection).execute(
                "SELECT position FROM checkpoints WHERE consumer = ?", (consumer,)
            ).fetchone()
        return int(row[0]) if row else 0

    def set_checkpoint(self, connection: sqlite3.Connection, consumer: str, position: int) -> None:
        """Record ``position`` for ``consumer`` inside the caller's transaction."""
        connection.execute(
            "INSERT INTO checkpoints (consumer, position) VALUES (?, ?) ON CONFLICT (consumer) DO UPDATE SET "
            "position = excluded.position, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            (consumer, position),
        )

    def checkpoints(self) -> dict[str, int]:
        """Return every consumer's checkpoint."""
        with self._translate_errors("read"):
            rows = self.connection.execute("SELECT consumer, position FROM checkpoints ORDER BY consumer").fetchall()
        return {str(name): int(position) for name, position in rows}

    def projection_version(self, connection: sqlite3.Connection, name: str) -> int | None:
        """Return the schema version recorded for projection ``name``, or None if never created."""
        row = connection.execute("SELECT version FROM projections WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else None

    def replay_until(self, name: str, connection: sqlite3.Connection | None = None) -> int:
        """Return the position up to which projection ``name`` is replaying history (0 if it is not)."""
        with self._translate_errors("read"):
            row = (connection or self.connection).execute(
                "SELECT replay_until FROM projections WHERE name = ?", (name,)
            ).fetchone()
        return int(row[0]) if row else 0

    def set_projection(self, connection: sqlite3.Connection, name: str, version: int, replay_until: int) -> None:
        """Record projection ``name`` at schema ``version``, replaying up to ``replay_until``, in the caller's transaction."""
        connection.execute(
            "INSERT INTO projections (name, version, replay_until) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "version = excluded.version, replay_until = excluded.replay_until",
            (name, version, replay_until),
        )

    # -- leases and parked events -------------------------------------------------------

    def acquire_lease(self, consumer: str, holder: str, seconds: float, *, now: float | None = None) -> bool:
        """Take or renew ``consumer``'s lease for ``holder``; return False while another live holder has it."""
        current = time.time() if now is None else now
        with self.transaction() as connection:
            row = connection.execute("SELECT holder, expires_at FROM leases WHERE consumer = ?", (consumer,)).fetchone()
            if row is not None and row[0] != holder and row[1] > current and _holder_alive(str(row[0])):
                return False
            connection.execute(
                "INSERT INTO leases (consumer, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (consumer) DO UPDATE "
                "SET holder = excluded.holder, expires_at = excluded.expires_at",
                (consumer, holder, current + seconds),
            )
        return True

    def release_lease(self, consumer: str, holder: str) -> None:
        """Give up ``consumer``'s lease if ``holder`` has it."""
        with self.transaction() as connection:
            connection.execute("DELETE FROM leases WHERE consumer = ? AND holder = ?", (consumer, holder))

    def leases(self) -> dict[str, tuple[str, float]]:
        """Return every lease as ``consumer -> (holder, expires_at)``."""
        with self._translate_errors("read"):
            rows = self.connection.execute("SELECT consumer, holder, expires_at FROM leases").fetchall()
        return {str(name): (str(holder), float(expires)) for name, holder, expires in rows}

    def park(self, connection: sqlite3.Connection, consumer: str, event: StoredEvent, error: str, attempts: int) -> None:
        """Record ``event`` as parked for ``consumer`` inside the caller's transaction."""
        connection.execute(
            "INSERT INTO parked (consumer, event_id, position, event_type, error, attempts) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (consumer, event_id) DO UPDATE SET error = excluded.error, attempts = excluded.attempts",
            (consumer, event.id, event.position, event.type, error, attempts),
        )

    def unpark(self, connection: sqlite3.Connection, consumer: str, event_id: str) -> None:
        """Remove a parked event inside the caller's transaction."""
        connection.execute("DELETE FROM parked WHERE consumer = ? AND event_id = ?", (consumer, event_id))

    def parked(self, consumer: str | None = None) -> list[dict[str, object]]:
        """Return parked events, oldest first, optionally of one consumer."""
        sql = "SELECT consumer, event_id, position, event_type, error, attempts, parked_at FROM parked"
        parameters: tuple[object, ...] = ()
        if consumer is not None:
            sql += " WHERE consumer = ?"
            parameters = (consumer,)
        with self._translate_errors("read"):
            rows = self.connection.execute(sql + " ORDER BY position", parameters).fetchall()
        keys = ("consumer", "event_id", "position", "event_type", "error", "attempts", "parked_at")
        return [dict(zip(keys, row)) for row in rows]

    # -- retention -------------------------------------------------------------------

    def delete_events(
        self,
        types: Sequence[str],
        *,
        protect_after: int,
        before: str | None = None,
        keep_latest: int | None = None,
        keep_latest_per: str | None = None,
    ) -> int:
        """Delete events of matching ``types`` at or below position ``protect_after``; return how many.

        ``before`` (a timestamp) limits deletion to older events. ``keep_latest``
        keeps the newest N of those types, and ``keep_latest_per`` keeps the newest
        event for each value of that payload field. Positions above
        ``protect_after`` (not yet processed by every durable consumer) are never deleted.

        Raises:
            InvalidEventError: ``keep_latest_per`` is not an indexed payload field.
        """
        EventFilter(payload_equals=((keep_latest_per, None),) if keep_latest_per else ()).validate()
        type_clauses, type_parameters = self._type_clause(types)
        type_where = " AND ".join(type_clauses) or "1"
        clauses = ["position <= ?", type_where]
        parameters: list[object] = [protect_after, *type_parameters]
        if before is not None:
            clauses.append("timestamp < ?")
            parameters.append(before)
        if keep_latest is not None:
            clauses.append(f"position NOT IN (SELECT position FROM events WHERE {type_where} ORDER BY position DESC LIMIT ?)")
            parameters.extend([*type_parameters, keep_latest])
        if keep_latest_per is not None:
            clauses.append(
                f"position NOT IN (SELECT max(position) FROM events WHERE {type_where} "
                f"GROUP BY json_extract(payload, '$.{keep_latest_per}'))"
            )
            parameters.extend(type_parameters)
        where = " AND ".join(clauses)
        with self.transaction() as connection:
            first = connection.execute(f"SELECT min(position) FROM events WHERE {where}", parameters).fetchone()[0]
            connection.execute(
                f"DELETE FROM events_text WHERE rowid IN (SELECT position FROM events WHERE {where})", parameters
            )
            deleted = connection.execute(f"DELETE FROM events WHERE {where}", parameters).rowcount
            if first is not None:
                repair_time_order(connection, int(first))
        return int(deleted)

    def size_bytes(self) -> dict[str, int]:
        """Return the sizes of the database file and its WAL file in bytes."""
        sizes = {}
        for label, suffix in (("database", ""), ("wal", "-wal")):
            try:
                sizes[label] = os.path.getsize(self.path + suffix)
            except OSError:
                sizes[label] = 0
        return sizes

    # -- maintenance -----------------------------------------------------------------

    def data_version(self) -> int:
        """Return SQLite's ``data_version``, which changes when another connection commits."""
        with self._translate_errors("read"):
            return int(self.connection.execute("PRAGMA data_version").fetchone()[0])

    def checkpoint_wal(self) -> None:
        """Copy the WAL into the database and truncate it; skipped quietly while readers block it."""
        with self._translate_errors("checkpoint"):
            self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
