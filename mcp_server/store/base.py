"""Records and filters shared by event-log backends.

An event enters a backend as a plain dictionary in wire form (``id``,
``type``, ``timestamp``, ``source``, ``payload``, ``metadata``) and leaves it as
a :class:`StoredEvent`, which adds the position the log assigned. Positions
strictly increase in commit order; consumers track positions, not timestamps.
"""

from __future__ import annotations

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from mcp_server import jsoncodec, subjects
from mcp_server.errors import InvalidEventError

__all__ = [
    "INDEXED_PAYLOAD_FIELDS",
    "MAX_PAGE_SIZE",
    "MAX_PAYLOAD_BYTES",
    "EventFilter",
    "EventLog",
    "QueryPage",
    "StoredEvent",
    "normalise_timestamp",
    "text_terms",
    "text_tokens",
    "validate_event",
]

MAX_PAGE_SIZE = 500
"""Hard cap on events returned by one query, whatever limit the caller asks for."""

INDEXED_PAYLOAD_FIELDS = ("path", "name", "tool", "event_id", "event_type", "handler")
"""Payload fields a query may filter on by equality; each has an index, so no query scans the log."""

MAX_PAYLOAD_BYTES = 256 * 1024
"""Largest accepted payload; events describe changes, they do not carry files."""

_TOKEN = re.compile(r"[^\W_]+")
"""A token of a text filter: a run of letters and digits, as FTS5's ``unicode61`` tokenizer splits text."""


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
    if any pattern matches. ``since`` and ``until`` are ISO 8601 times
    (inclusive); construction rewrites them in the log's form with
    :func:`normalise_timestamp`, so backends compare them with stored timestamps
    as strings, and raises :class:`InvalidEventError` for anything else. ``after`` and ``before``
    are positions (exclusive). ``text`` is whitespace-separated words, each of
    which must be a whole word of the event's type or payload. A word ending in
    ``*`` matches as a prefix (``check*`` finds ``checkout``), and a word that
    punctuation splits (``cart_total``) matches those words in that order; see
    :func:`text_terms`.
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

    def __post_init__(self) -> None:
        if self.since is not None:
            object.__setattr__(self, "since", normalise_timestamp(self.since, "since", round_up=True))
        if self.until is not None:
            object.__setattr__(self, "until", normalise_timestamp(self.until, "until"))

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

    def validate_request(self) -> None:
        """Check the conditions a caller wrote by hand, at the MCP tool and command-line boundary.

        The log accepts these filters: text without words matches every event, and an empty
        source or a reversed range matches none. From a person or an agent they are
        mistakes, so the tools reject them with the fix.

        Raises:
            InvalidEventError: ``text`` has no words, a name is empty, or a range is reversed.
        """
        if self.text is not None and not text_terms(self.text):
            raise InvalidEventError(
                f"invalid text {self.text!r}: it contains no words to search for; give words of letters or "
                "digits such as 'cart total', or leave text out to match every event"
            )
        for name, value in (("source", self.source), ("session_id", self.session_id),
                            ("correlation_id", self.correlation_id)):
            if value is not None and not value.strip():
                raise InvalidEventError(f"invalid {name} {value!r}: it is empty; give a value or leave {name} out")
        if self.after is not None and self.before is not None and self.after >= self.before:
            raise InvalidEventError(
                f"invalid position range: since_position {self.after} is not below until_position {self.before}, "
                "so no event can match; both bounds are exclusive, so give since_position < until_position"
            )
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidEventError(
                f"invalid time range: since {self.since} is after until {self.until}; give since <= until"
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


_EXTRA_FRACTION = re.compile(r"[.,]\d{6}(\d+)")
"""Digits of a fraction of a second past microseconds, the log's precision."""

_HOUR_24 = re.compile(r"[Tt ]24:?00")
"""ISO 8601's end-of-day hour 24, which :mod:`datetime` cannot represent."""


def normalise_timestamp(value: str, name: str, *, round_up: bool = False) -> str:
    """Return the ISO 8601 time ``value`` in the log's form, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.

    A time without an offset is UTC, and a date alone is its midnight. Digits
    past microseconds are dropped, or with ``round_up`` (for a lower bound)
    round the time up, so no stored timestamp compares wrongly. ``name`` names
    the value in the error.

    Raises:
        InvalidEventError: ``value`` is not an ISO 8601 date or date and time.
    """
    if isinstance(value, str) and _HOUR_24.search(value):
        raise InvalidEventError(
            f"invalid {name} {value!r}: hour 24 is not accepted; give 00:00:00 of the next day instead"
        )
    try:
        # RFC 3339 allows a lower-case t and z, which fromisoformat rejects before Python 3.12.
        moment = datetime.fromisoformat(value.upper())
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc)
        extra = _EXTRA_FRACTION.search(value)
        if round_up and extra is not None and extra.group(1).strip("0"):
            # The last microsecond of 9999 cannot round up, and no stored time is later.
            moment = moment.replace(tzinfo=None)
            moment = moment + timedelta(microseconds=1) if moment < datetime.max else moment
    except (AttributeError, TypeError, ValueError, OverflowError):
        raise InvalidEventError(
            f"invalid {name} {value!r}: expected an ISO 8601 date and time in the years 1 to 9999, such as "
            "2026-12-04T23:30:00Z or 2026-12-04T23:30:00.25+05:00, or a date such as 2026-12-04; "
            "a time without an offset is UTC"
        ) from None
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )


def text_tokens(text: str) -> list[str]:
    """Split ``text`` into lower-case runs of letters and digits."""
    return _TOKEN.findall(text.lower())


def text_terms(text: str) -> list[tuple[tuple[str, ...], bool]]:
    """Parse a text filter into terms: the tokens of each whitespace-separated word, and whether it ends in ``*``.

    Every term must match. A term of several tokens is a phrase, whose tokens
    must follow one another. A term ending in ``*`` accepts any token that
    starts with its last token, and the others accept whole tokens only. Words
    without letters or digits are dropped, and a filter without terms matches every event.
    """
    terms = []
    for word in text.split():
        tokens = tuple(text_tokens(word))
        if tokens:
            terms.append((tokens, word.endswith("*")))
    return terms


def text_matches(text: str, event: StoredEvent) -> bool:
    """Return whether every term of ``text`` (see :func:`text_terms`) occurs in the event's type or payload.

    NOTE: the SQLite backend's tokenizer also folds diacritics (``café`` matches ``cafe``), but this check does not.
    """
    terms = text_terms(text)
    if not terms:
        return True
    fields = (text_tokens(event.type), text_tokens(json.dumps(event.payload, ensure_ascii=False)))
    return all(any(_has_phrase(field, tokens, prefix) for field in fields) for tokens, prefix in terms)


def _has_phrase(field: list[str], phrase: tuple[str, ...], prefix: bool) -> bool:
    *leading, last = phrase
    width = len(phrase)
    for start in range(len(field) - width + 1):
        final = field[start + width - 1]
        if field[start : start + width - 1] == leading and (final.startswith(last) if prefix else final == last):
            return True
    return False


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

    Every append runs this once per event, so the common case takes one
    combined test per group of checks and only a failure looks for the field to blame.

    Raises:
        InvalidEventError: a field is missing, of the wrong type, or too large,
            or the payload or metadata cannot be encoded as JSON.
    """
    event_id = event.get("id")
    event_type = event.get("type")
    timestamp = event.get("timestamp")
    source = event.get("source")
    if not (
        type(event_id) is str and event_id
        and type(event_type) is str and event_type
        and type(timestamp) is str and timestamp
        and type(source) is str and source
    ):
        _check_text_fields(event)
    if not subjects.is_valid_type(event_type):  # type: ignore[arg-type]
        subjects.validate_type(str(event_type))

    payload = event.get("payload", {})
    metadata = event.get("metadata", {})
    if not isinstance(payload, dict):
        raise InvalidEventError(f"event {event_id!r}: payload must be a JSON object, got {type(payload).__name__}")
    if not isinstance(metadata, dict):
        raise InvalidEventError(f"event {event_id!r}: metadata must be a JSON object, got {type(metadata).__name__}")

    try:
        payload_text = jsoncodec.dumps(payload)
        metadata_text = jsoncodec.dumps(metadata)
    except ValueError as exc:
        _raise_unencodable(event)
        raise InvalidEventError(f"event {event_id!r} is not JSON-serialisable: {exc}") from exc
    except (TypeError, RecursionError) as exc:
        # The encoder does not track containers it is inside, so a circular reference ends as RecursionError.
        raise InvalidEventError(
            f"event {event_id!r} is not JSON-serialisable: {exc}; use only dicts, lists, strings, numbers, "
            "booleans and None, without circular references"
        ) from exc
    # SQLite and the team relay store UTF-8, which cannot encode a lone surrogate. Text that is
    # ASCII throughout, as almost every event is, needs no further look.
    if not (payload_text.isascii() and metadata_text.isascii() and event_id.isascii()  # type: ignore[union-attr]
            and timestamp.isascii() and source.isascii()):  # type: ignore[union-attr]
        _check_utf8(event, (event_id, timestamp, source, payload_text, metadata_text))  # type: ignore[arg-type]
    if len(payload_text) > MAX_PAYLOAD_BYTES:
        raise InvalidEventError(
            f"event {event_id!r} payload is {len(payload_text)} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit; "
            "store a path or hash instead of content"
        )

    session_id = metadata.get("session_id")
    correlation_id = metadata.get("correlation_id")
    causation_id = metadata.get("causation_id")
    return (
        event_id,
        event_type,
        timestamp,
        source,
        session_id if isinstance(session_id, str) and session_id else None,
        correlation_id if isinstance(correlation_id, str) and correlation_id else None,
        causation_id if isinstance(causation_id, str) and causation_id else None,
        payload_text,
        metadata_text,
    )


def _check_utf8(event: dict[str, object], texts: tuple[str, ...]) -> None:
    """Raise :class:`InvalidEventError` naming the field when one of ``texts`` cannot be encoded as UTF-8."""
    try:
        for text in texts:
            if not text.isascii():
                text.encode("utf-8")
    except UnicodeEncodeError:
        _raise_unencodable(event)
        raise


def _raise_unencodable(event: dict[str, object]) -> None:
    """Raise :class:`InvalidEventError` for the first field of ``event`` that JSON or UTF-8 cannot carry, if any."""
    found = None
    for key in ("id", "timestamp", "source"):
        found = found or _find_unencodable(event.get(key), key)
    found = found or _find_unencodable(event.get("payload"), "payload")
    found = found or _find_unencodable(event.get("metadata"), "metadata")
    if found is None:
        return
    where, value = found
    if isinstance(value, float):
        raise InvalidEventError(
            f"event {event.get('id')!r}: {where} is {value!r}, which JSON cannot represent; "
            "send a finite number, or null or a string such as \"inf\" in its place"
        )
    surrogate = next(character for character in value if "\ud800" <= character <= "\udfff")
    raise InvalidEventError(
        f"event {event.get('id')!r}: {where} contains the lone surrogate {surrogate!r}, which UTF-8 cannot encode; "
        "send valid Unicode text, with the surrogate removed, replaced, or written out as a backslash escape"
    )


def _find_unencodable(value: object, where: str) -> tuple[str, Any] | None:
    """Return ``(field path, value)`` of the first non-finite number or unencodable string in ``value``."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where, value
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _find_unencodable(key, where):
                return f"{where} key '{key.encode('utf-8', 'backslashreplace').decode('utf-8')}'", key
            found = _find_unencodable(item, f"{where}.{key}")
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _find_unencodable(item, f"{where}[{index}]")
            if found:
                return found
    return None


def _check_text_fields(event: dict[str, object]) -> None:
    """Raise for the first of ``id``, ``type``, ``timestamp`` and ``source`` that is not a non-empty string."""
    for key in ("id", "type", "timestamp", "source"):
        value = event.get(key)
        if not isinstance(value, str) or not value:
            raise InvalidEventError(f"event field {key!r} must be a non-empty string, got {value!r}")


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
        """Return one page of events matching ``query``, newest first unless ``descending`` is False.

        Pages are in position order, with ``since`` and ``until`` too. An event
        ingested late (a hook event from the inbox, a teammate's event from the
        relay) keeps its own timestamp, so timestamps within a page need not be sorted.
        """

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
