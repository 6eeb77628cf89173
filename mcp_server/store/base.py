"""Records and filters shared by event-log backends.

An event enters a backend as a plain dictionary in wire form (``id``,
``type``, ``timestamp``, ``source``, ``payload``, ``metadata``) and leaves it as
a :class:`StoredEvent`, which adds the position the log assigned. Positions
strictly increase in commit order; consumers track positions, not timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAX_PAGE_SIZE", "EventFilter", "QueryPage", "StoredEvent"]

MAX_PAGE_SIZE = 500
"""Hard cap on events returned by one query, whatever limit the caller asks for."""


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

    ``types`` holds patterns (see :mod:`mcp_server.subjects`); an event matches
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


@dataclass(frozen=True, slots=True)
class QueryPage:
    """One page of query results.

    ``next_cursor`` is the position to pass back as ``cursor`` for the next
    page, or None when this page is the last one. ``total`` counts every event
    matching the filter, across pages.
    """

    events: list[StoredEvent]
    next_cursor: int | None
    total: int
