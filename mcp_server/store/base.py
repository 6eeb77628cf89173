"""Records and filters shared by event-log backends.

An event enters a backend as a plain dictionary in wire form (``id``,
``type``, ``timestamp``, ``source``, ``payload``, ``metadata``) and leaves it as
a :class:`StoredEvent`, which adds the position the log assigned. Positions
strictly increase in commit order; consumers track positions, not timestamps.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from mcp_server import subjects
from mcp_server.errors import InvalidEventError

__all__ = [
    "INDEXED_PAYLOAD_FIELDS",
    "MAX_PAGE_SIZE",
    "MAX_PAYLOAD_BYTES",
    "EventFilter",
    "EventLog",
    "QueryPage",
    "StoredEvent",
    "validate_event",
]

MAX_PAGE_SIZE = 500
"""Hard cap on events returned by one query, whatever limit the caller asks for."""

INDEXED_PAYLOAD_FIELDS = ("path", "name", "tool", "event_id", "event_type", "handler")
"""Payload fields a query may filter on by equality; each has an index, so no query scans the log."""

MAX_PAYLOAD_BYTES = 256 * 1024
"""Largest accepted payload; events describe changes, they do not carry files."""

_WORD = re.compile(r"\w+")

# json.dumps with non-default options builds a new encoder per call; one shared encoder is about 25% faster.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the log stores it, with its position."""

    position: int
    id: str
    type: str
    timestamp: str
    source: str
    payload: dict[str, object]
    metadata: dict[str, object]

    def to_dict(self) -> dict[str, object]:
        """Return the wire form plus ``position``."""
        return {
            "position": self.position,
            "id": self.id,
            "type": self.type,
            "timestamp": self.timestamp,
            "source": self.source,
            "payload": self.payload,
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Conditions on events; every field left at its default matches everything.

    ``types`` contains patterns (see :mod:`mcp_server.subjects`); an event matches
    if any pattern matches. ``since`` and ``until`` are timestamps in the log's
    ISO 8601 form, compared as strings (inclusive). ``after`` and ``before``
    are positions (exclusive).
    """

    types: tuple[str, ...] = ()
    source: str | None = None
    session_id: str | None = None
    correlation_id: str | None = None
    after: int | None = None
    before: int | None = None
    since: str | None = None
    until: str | None = None
    payload_equals: tuple[tuple[str, object], ...] = field(default=())
    text: str | None = None

    def validate(self) -> None:
        """Check the patterns and payload fields.

        Raises:
            InvalidEventError: a pattern is malformed or a payload field is not indexed.
        """
        for pattern in self.types:
            subjects.validate_pattern(pattern)
        for key, _ in self.payload_equals:
            if key not in INDEXED_PAYLOAD_FIELDS:
                raise InvalidEventError(
                    f"cannot filter on payload field {key!r}: it has no index; use one of "
                    f"{', '.join(INDEXED_PAYLOAD_FIELDS)}"
                )

    def matches(self, event: StoredEvent) -> bool:
        """Return whether ``event`` meets every condition (the reference for every backend)."""
        checks = (
            not self.types or any(subjects.matches(pattern, event.type) for pattern in self.types),
            self.source is None or event.source == self.source,
            self.session_id is None or event.metadata.get("session_id") == self.session_id,
            self.correlation_id is None or event.metadata.get("correlation_id") == self.correlation_id,
            self.after is None or event.position > self.after,
            self.before is None or event.position < self.before,
            self.since is None or event.timestamp >= self.since,
            self.until is None or event.timestamp <= self.until,
            all(event.payload.get(key) == value for key, value in self.payload_equals),
            self.text is None or text_matches(self.text, event),
        )
        return all(checks)


def text_matches(text: str, event: StoredEvent) -> bool:
    """Return whether every word of ``text`` is a word of the event's type or payload (the last as a prefix)."""
    words = [word.lower() for word in _WORD.findall(text)]
    if not words:
        return True
    tokens = set(_WORD.findall(f"{event.type} {json.dumps(event.payload, ensure_ascii=False)}".lower()))
    *whole, last = words
    return all(word in tokens for word in whole) and any(token.startswith(last) for token in tokens)


@dataclass(frozen=True, slots=True)
class QueryPage:
    """One page of query results.

    ``next_cursor`` is the position to pass back as ``cursor`` for the next
    page, or None when this page is the last one. ``total`` counts every event
    matching the filter, across pages; when ``total_capped`` is set, at least that many match.
    """

    events: list[StoredEvent]
    next_cursor: int | None
    total: int
    total_capped: bool = False


def validate_event(event: dict[str, object]) -> tuple[object, ...]:
    """Return the insert parameters for ``event`` in wire form.

    Raises:
        InvalidEventError: a field is missing, of the wrong type, or too large.
    """
    for key in ("id", "type", "timestamp", "source"):
        value = event.get(key)
        if not isinstance(value, str) or not value:
            raise InvalidEventError(f"event field {key!r} must be a non-empty string, got {value!r}")
    if not subjects.is_valid_type(event["type"]):  # type: ignore[arg-type]
        subjects.validate_type(str(event["type"]))

    payload = event.get("payload", {})
    metadata = event.get("metadata", {})
    if not isinstance(payload, dict):
        raise InvalidEventError(f"event {event['id']!r}: payload must be a JSON object, got {type(payload).__name__}")
    if not isinstance(metadata, dict):
        raise InvalidEventError(f"event {event['id']!r}: metadata must be a JSON object, got {type(metadata).__name__}")

    try:
        payload_text = _ENCODER.encode(payload)
        metadata_text = _ENCODER.encode(metadata)
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(f"event {event['id']!r} is not JSON-serialisable: {exc}") from exc
    if len(payload_text) > MAX_PAYLOAD_BYTES:
        raise InvalidEventError(
            f"event {event['id']!r} payload is {len(payload_text)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit; "
            "store a path or hash instead of content"
        )

    return (
        event["id"],
        event["type"],
        event["timestamp"],
        event["source"],
        _text_or_none(metadata.get("session_id")),
        _text_or_none(metadata.get("correlation_id")),
        _text_or_none(metadata.get("causation_id")),
        payload_text,
        metadata_text,
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class EventLog(ABC):
    """The contract every event-log backend keeps.

    Public methods that write open their own transaction; the ``*_in``
    methods work inside a transaction the caller holds, so a consumer can
    commit its state, the events it emits and its checkpoint together.
    """

    path: str

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """Return a context manager for one atomic write transaction."""

    def append(self, events: Iterable[dict[str, Any]]) -> list[StoredEvent]:
        """Append ``events`` atomically and return those that were not already stored.

        Raises:
            InvalidEventError: an event is malformed; nothing is stored.
        """
        batch = list(events)
        if not batch:
            return []
        with self.transaction() as transaction:
            return self.append_in(transaction, batch)

    @abstractmethod
    def append_in(self, transaction: Any, events: Iterable[dict[str, Any]]) -> list[StoredEvent]:
        """Append ``events`` inside the caller's transaction."""

    @abstractmethod
    def head(self) -> int:
        """Return the position of the newest event, or 0 for an empty log."""

    @abstractmethod
    def get(self, event_id: str) -> StoredEvent | None:
        """Return the event with ``event_id``, or None."""

    @abstractmethod
    def read_after(self, position: int, *, limit: int = MAX_PAGE_SIZE, types: Sequence[str] = ()) -> list[StoredEvent]:
        """Return up to ``limit`` events after ``position`` in log order, optionally of matching types."""

    @abstractmethod
    def query(
        self, query: EventFilter, *, limit: int = 50, cursor: int | None = None, descending: bool = True
    ) -> QueryPage:
        """Return one page of events matching ``query``, newest first unless ``descending`` is False."""

    @abstractmethod
    def checkpoint(self, consumer: str, transaction: Any = None) -> int:
        """Return the last position ``consumer`` has processed (0 if none)."""

    @abstractmethod
    def set_checkpoint(self, transaction: Any, consumer: str, position: int) -> None:
        """Record ``position`` for ``consumer`` inside the caller's transaction."""

    @abstractmethod
    def checkpoints(self) -> dict[str, int]:
        """Return every consumer's checkpoint."""

    @abstractmethod
    def close(self) -> None:
        """Release the backend's resources; later use raises ClosedError."""

    def iterate(self, after: int = 0, *, batch: int = MAX_PAGE_SIZE) -> Iterator[StoredEvent]:
        """Yield every event after ``after`` in log order, reading ``batch`` at a time."""
        position = after
        while True:
            events = self.read_after(position, limit=batch)
            if not events:
                return
            yield from events
            position = events[-1].position
