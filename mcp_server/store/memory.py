"""An event log kept in memory: a complete backend for tests, tools and short-lived processes.

It keeps every promise of :class:`~mcp_server.store.base.EventLog` (positions,
idempotent and atomic appends, queries, checkpoints) within one process, and
loses everything when the process ends. A transaction holds a lock and undoes
its appends and checkpoint changes if the block raises.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from mcp_server import subjects
from mcp_server.errors import ClosedError
from mcp_server.store.base import MAX_PAGE_SIZE, EventFilter, EventLog, QueryPage, StoredEvent
from mcp_server.store.base import validate_event

__all__ = ["MemoryEventLog"]


class _Transaction:
    """Undo information for one open transaction."""

    def __init__(self, event_count: int, checkpoints: dict[str, int]) -> None:
        self.event_count = event_count
        self.checkpoints = checkpoints


class MemoryEventLog(EventLog):
    """The event log in a Python list, safe to share between threads of one process."""

    def __init__(self) -> None:
        self.path = ":memory:"
        self._events: list[StoredEvent] = []
        self._by_id: dict[str, StoredEvent] = {}
        self._checkpoints: dict[str, int] = {}
        self._lock = threading.RLock()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("in-memory event log is closed; create a new MemoryEventLog")

    @contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        """Run the block atomically: on an exception, its appends and checkpoints are undone."""
        self._check_open()
        with self._lock:
            undo = _Transaction(len(self._events), dict(self._checkpoints))
            try:
                yield undo
            except BaseException:
                for event in self._events[undo.event_count :]:
                    del self._by_id[event.id]
                del self._events[undo.event_count :]
                self._checkpoints = undo.checkpoints
                raise

    def append_in(self, transaction: Any, events: Iterable[dict[str, Any]]) -> list[StoredEvent]:
        """Append ``events`` inside the caller's transaction, skipping ids already stored."""
        stored: list[StoredEvent] = []
        for event in events:
            validate_event(event)
            if event["id"] in self._by_id:
                continue
            record = StoredEvent(
                position=len(self._events) + 1,
                id=str(event["id"]),
                type=str(event["type"]),
                timestamp=str(event["timestamp"]),
                source=str(event["source"]),
                payload=dict(event.get("payload") or {}),
                metadata=dict(event.get("metadata") or {}),
            )
            self._events.append(record)
            self._by_id[record.id] = record
            stored.append(record)
        return stored

    def head(self) -> int:
        """Return the position of the newest event, or 0 for an empty log."""
        self._check_open()
        return len(self._events)

    def get(self, event_id: str) -> StoredEvent | None:
        """Return the event with ``event_id``, or None."""
        self._check_open()
        return self._by_id.get(event_id)

    def read_after(self, position: int, *, limit: int = MAX_PAGE_SIZE, types: Sequence[str] = ()) -> list[StoredEvent]:
        """Return up to ``limit`` events after ``position`` in log order, optionally of matching types."""
        self._check_open()
        for pattern in types:
            subjects.validate_pattern(pattern)
        start = max(0, position)
        with self._lock:
            if not types:
                return self._events[start : start + limit]
            following = self._events[start:]
        matching = (event for event in following if any(subjects.matches(p, event.type) for p in types))
        return list(itertools.islice(matching, limit))

    def query(
        self, query: EventFilter, *, limit: int = 50, cursor: int | None = None, descending: bool = True
    ) -> QueryPage:
        """Return one page of events matching ``query``; see :meth:`EventLog.query`."""
        self._check_open()
        query.validate()
        limit = max(1, min(int(limit), MAX_PAGE_SIZE))
        with self._lock:
            matching = [event for event in self._events if query.matches(event)]
        ordered = list(reversed(matching)) if descending else matching
        if cursor is not None:
            ordered = [e for e in ordered if (e.position < cursor if descending else e.position > cursor)]
        page = ordered[:limit]
        next_cursor = page[-1].position if len(ordered) > limit else None
        return QueryPage(events=page, next_cursor=next_cursor, total=len(matching))

    def checkpoint(self, consumer: str, transaction: Any = None) -> int:
        """Return the last position ``consumer`` has processed (0 if none)."""
        self._check_open()
        return self._checkpoints.get(consumer, 0)

    def set_checkpoint(self, transaction: Any, consumer: str, position: int) -> None:
        """Record ``position`` for ``consumer`` inside the caller's transaction."""
        self._checkpoints[consumer] = position

    def checkpoints(self) -> dict[str, int]:
        """Return every consumer's checkpoint."""
        self._check_open()
        return dict(sorted(self._checkpoints.items()))

    def close(self) -> None:
        """Drop every event; later use raises :class:`ClosedError`."""
        self._closed = True
        self._events.clear()
        self._by_id.clear()
