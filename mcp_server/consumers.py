"""Durable consumers: projections of the log that survive restarts.

A :class:`Projection` keeps derived state (the touchpoint index, the search
index, the context cache) in tables of the log's own database. The
:class:`ConsumerRunner` feeds it the events after its checkpoint and, for each
event, commits the projection's writes, the events it emits and its new
checkpoint in **one transaction**. That gives an exactly-once effect:

* after a crash the consumer resumes from its checkpoint, and nothing it
  committed is applied twice;
* several processes may run the same consumer (two servers and the CLI on one
  project): each transaction first checks that the checkpoint is still the
  one it started from, and if another process moved it, drops its work and
  reads again. Work done outside the transaction (:meth:`Projection.prepare`,
  which may read files) is the only thing ever repeated.

A projection whose ``version`` differs from the one recorded in the database
is dropped, recreated and rebuilt from position 0; so is one reset by
``eventsync rebuild``. While it replays events it had already seen, the events
it would emit are discarded: the log already holds the ones it emitted the
first time, and a rebuild restores state without announcing history again.
A handler error does not stop the consumer: the event is recorded as
``event.failed`` and skipped.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any, Protocol

from mcp_server.events import make_event
from mcp_server.store.base import StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog

__all__ = ["CATCH_UP_BATCH", "ConsumerRunner", "Projection"]

logger = logging.getLogger(__name__)

CATCH_UP_BATCH = 200
"""Events read per query while catching up; each is still committed on its own."""


class Projection(Protocol):
    """A durable consumer that keeps derived state in the log's database."""

    name: str
    version: int
    subscriptions: tuple[str, ...]
    depends_on: tuple[str, ...]
    """Projections whose tables this one reads; resetting one of them resets this one too."""

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the projection's tables (called inside a transaction)."""

    def drop(self, connection: sqlite3.Connection) -> None:
        """Drop the projection's tables (called inside a transaction)."""

    def prepare(self, event: StoredEvent) -> Any:
        """Do the slow, side-effect-free part of handling ``event`` (for example read a file)."""

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: Any) -> list[dict[str, Any]]:
        """Write the state change for ``event`` and return the events to emit (wire form)."""


class _CheckpointMoved(Exception):
    """Another process advanced the checkpoint while this one prepared its work."""


class ConsumerRunner:
    """Runs projections against a log, one transaction per event."""

    def __init__(self, log: SQLiteEventLog, *, source: str = "consumer") -> None:
        self.log = log
        self.source = source
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def _lock(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())

    def ensure(self, projection: Projection) -> bool:
        """Create the projection's tables, or rebuild them if its version changed; return True if reset."""
        with self.log.transaction() as connection:
            recorded = self.log.projection_version(connection, projection.name)
            if recorded == projection.version:
                return False
            if recorded is not None:
                logger.info(
                    "projection %s changed from version %d to %d; rebuilding it from the log",
                    projection.name, recorded, projection.version,
                )
            self._reset_in(connection, projection)
            return True

    def reset(self, projection: Projection) -> None:
        """Drop the projection's state and checkpoint so the next catch-up rebuilds it from the log."""
        with self.log.transaction() as connection:
            self._reset_in(connection, projection)

    def _reset_in(self, connection: sqlite3.Connection, projection: Projection) -> None:
        head = int(connection.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])
        projection.drop(connection)
        projection.create(connection)
        self.log.set_projection(connection, projection.name, projection.version, replay_until=head)
        self.log.set_checkpoint(connection, projection.name, 0)

    def catch_up(self, projection: Projection) -> int:
        """Apply every event up to the current head; return how many matching events were handled."""
        with self._lock(projection.name):
            handled = 0
            while True:
                try:
                    count, finished = self._step(projection)
                except _CheckpointMoved:
                    continue
                handled += count
                if finished:
                    return handled

    def _step(self, projection: Projection) -> tuple[int, bool]:
        start = self.log.checkpoint(projection.name)
        head = self.log.head()
        if head <= start:
            return 0, True

        batch = [
            event
            for event in self.log.read_after(start, limit=CATCH_UP_BATCH, types=projection.subscriptions)
            if event.position <= head
        ]
        expected = start
        for event in batch:
            self._handle(projection, event, expected)
            expected = event.position

        if len(batch) < CATCH_UP_BATCH:
            if head > expected:
                self._advance(projection.name, expected, head)
            return len(batch), True
        return len(batch), False

    def _advance(self, name: str, expected: int, position: int) -> None:
        with self.log.transaction() as connection:
            if self.log.checkpoint(name, connection) != expected:
                raise _CheckpointMoved
            self.log.set_checkpoint(connection, name, position)

    def _handle(self, projection: Projection, event: StoredEvent, expected: int) -> None:
        try:
            prepared = projection.prepare(event)
        except Exception as exc:  # noqa: BLE001 - one bad event must not stop the consumer
            self._skip_failed(projection, event, expected, exc)
            return

        try:
            with self.log.transaction() as connection:
                if self.log.checkpoint(projection.name, connection) != expected:
                    raise _CheckpointMoved
                emitted = projection.apply(connection, event, prepared)
                if event.position > self.log.replay_until(projection.name, connection):
                    self.log.append_in(connection, emitted)
                self.log.set_checkpoint(connection, projection.name, event.position)
        except _CheckpointMoved:
            raise
        except Exception as exc:  # noqa: BLE001 - the transaction rolled back; record and move on
            self._skip_failed(projection, event, expected, exc)

    def _skip_failed(self, projection: Projection, event: StoredEvent, expected: int, exc: BaseException) -> None:
        error_type = type(exc).__name__
        logger.error(
            "consumer %s failed on event %s (%s): %s: %s; the event is skipped",
            projection.name, event.id, event.type, error_type, exc,
        )
        failure = make_event(
            "event.failed",
            {
                "event_id": event.id,
                "event_type": event.type,
                "handler": projection.name,
                "error_type": error_type,
                "error": f"{error_type}: {exc}",
                "attempt": 1,
            },
            source=f"consumer:{projection.name}",
            cause=event,
        )
        with self.log.transaction() as connection:
            if self.log.checkpoint(projection.name, connection) != expected:
                raise _CheckpointMoved
            self.log.append_in(connection, [failure])
            self.log.set_checkpoint(connection, projection.name, event.position)
