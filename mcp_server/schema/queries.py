"""Payload-field filters: which fields a query may use, saved queries, and running them.

A ``where`` condition compares a top-level payload field with a value after
the event was upcast to the current version of its type, so a filter written
against today's schema also finds events stored under an older one.

:class:`PayloadFields` is the query layer's view of the schemas: the fields
each type declares, read from the persisted registry and reloaded whenever a
newer ``schema.updated`` is in the log. A ``where`` field must be declared by
at least one selected type that has a schema, in the persisted registry or in
a model loaded by this process. Types without a schema accept any field,
because nothing is known about them.

Saved queries are named filters kept in the ``saved_queries`` table. They are
user data, not a projection of the log: rebuilding modules keeps them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcp_server import subjects
from mcp_server.errors import InvalidEventError, NotFoundError
from mcp_server.schema.registry import SchemaRegistry
from mcp_server.schema.table import load_schemas
from mcp_server.store.base import MAX_PAGE_SIZE, EventFilter, QueryPage, StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog

__all__ = ["PayloadFields", "SavedQueries", "SavedQuery", "parse_where", "query_where", "saved_queries_in"]

SCAN_BATCH = MAX_PAGE_SIZE
"""Events read per step while filtering on payload fields after upcasting."""

_QUERY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def parse_where(conditions: Sequence[str]) -> dict[str, Any]:
    """Turn ``field=value`` strings into a mapping; a value that parses as JSON is taken as JSON.

    ``line=3`` compares with the integer 3, ``done=true`` with a boolean and
    ``path=src/a.py`` with a string; quote a value (``name="3"``) to force a string.

    Raises:
        InvalidEventError: a condition has no ``=`` or an empty field name.
    """
    where: dict[str, Any] = {}
    for condition in conditions:
        key, separator, raw = condition.partition("=")
        key = key.strip()
        if not separator or not key:
            raise InvalidEventError(f"invalid condition {condition!r}; write it as field=value, for example path=src/a.py")
        try:
            where[key] = json.loads(raw)
        except json.JSONDecodeError:
            where[key] = raw
    return where


class PayloadFields:
    """The payload fields the query layer accepts, per type, kept in step with ``schema.updated``."""

    def __init__(self, log: SQLiteEventLog, registry: SchemaRegistry) -> None:
        self._log = log
        self._registry = registry
        self._lock = threading.Lock()
        self._generation = -1
        self._fields: dict[str, frozenset[str]] = {}

    def refresh(self) -> None:
        """Reload the fields on next use."""
        with self._lock:
            self._generation = -1

    def by_type(self) -> dict[str, frozenset[str]]:
        """Return type → payload fields declared by the persisted schema or the model loaded here.

        The persisted part is reloaded after a newer ``schema.updated``, which
        another process may have appended.
        """
        newest = self._log.query(EventFilter(types=("schema.updated",)), limit=1).events
        generation = newest[0].position if newest else 0
        with self._lock:
            if generation != self._generation:
                stored = load_schemas(self._log.connection)
                self._fields = {name: frozenset(row.fields) for name, row in stored.items()}
                self._generation = generation
            fields = dict(self._fields)
        for entry in self._registry.entries():
            fields[entry.type] = fields.get(entry.type, frozenset()) | frozenset(entry.fields)
        return fields

    def accepted(self, patterns: Sequence[str]) -> frozenset[str] | None:
        """Return the fields a filter on ``patterns`` may use, or None when any field is accepted."""
        by_type = self.by_type()
        selected = [name for name in by_type if not patterns or any(subjects.matches(p, name) for p in patterns)]
        exact_unknown = any("*" not in p and ">" not in p and p not in by_type for p in patterns)
        if exact_unknown or not selected:
            return None
        return frozenset().union(*(by_type[name] for name in selected))

    def check(self, patterns: Sequence[str], fields: Sequence[str]) -> None:
        """Check that every field of ``fields`` is accepted for ``patterns``.

        Raises:
            InvalidEventError: a field is declared by none of the selected types; the message lists the known fields.
        """
        accepted = self.accepted(patterns)
        if accepted is None:
            return
        for name in fields:
            if name not in accepted:
                selection = ", ".join(patterns) if patterns else "any type"
                raise InvalidEventError(
                    f"unknown payload field {name!r} for {selection}; use one of: {', '.join(sorted(accepted))}"
                )


def _matches(event: StoredEvent, where: Mapping[str, Any]) -> bool:
    return all(key in event.payload and event.payload[key] == value for key, value in where.items())


def query_where(
    log: SQLiteEventLog,
    query: EventFilter,
    where: Mapping[str, Any],
    upcast: Callable[[StoredEvent], StoredEvent],
    *,
    limit: int = 50,
    cursor: int | None = None,
    descending: bool = True,
) -> QueryPage:
    """Return one page of upcast events matching ``query`` and the payload conditions ``where``.

    The store's type index narrows the events to the selected types. The other
    conditions of ``query`` are checked with :meth:`EventFilter.matches`, and
    payload conditions after upcasting, so every event of the selected types is read.
    """
    # NOTE: ``total`` counts matches across all pages, so every call reads every
    # event of the selected types: time is linear in their number (see bench_schema.py).
    query.validate()
    limit = max(1, min(int(limit), MAX_PAGE_SIZE))
    matched: list[StoredEvent] = []
    position = 0
    while batch := log.read_after(position, limit=SCAN_BATCH, types=query.types):
        position = batch[-1].position
        for event in batch:
            if not query.matches(event):
                continue
            current = upcast(event)
            if _matches(current, where):
                matched.append(current)

    total = len(matched)
    if descending:
        matched.reverse()
    if cursor is not None:
        matched = [event for event in matched if (event.position < cursor if descending else event.position > cursor)]
    page = matched[:limit]
    next_cursor = page[-1].position if len(matched) > limit else None
    return QueryPage(events=page, next_cursor=next_cursor, total=total)


@dataclass(frozen=True, slots=True)
class SavedQuery:
    """A named filter: type patterns and payload conditions."""

    name: str
    types: tuple[str, ...]
    where: dict[str, Any]
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the query as the CLI's ``--json`` prints it."""
        return {"name": self.name, "types": list(self.types), "where": self.where, "created_at": self.created_at}


class SavedQueries:
    """The ``saved_queries`` table."""

    def __init__(self, log: SQLiteEventLog) -> None:
        self._log = log
        exists = log.connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'saved_queries'"
        ).fetchone()
        if not exists:  # a read first: every runtime opens this, and most find the table there
            with log.transaction() as connection:
                self.create(connection)

    @staticmethod
    def create(connection: sqlite3.Connection) -> None:
        """Create the table if it does not exist."""
        connection.execute(
            """CREATE TABLE IF NOT EXISTS saved_queries (
                name TEXT PRIMARY KEY,
                types TEXT NOT NULL,
                conditions TEXT NOT NULL,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            ) WITHOUT ROWID"""
        )

    def save(self, name: str, types: Sequence[str], where: Mapping[str, Any]) -> SavedQuery:
        """Store (or replace) the query ``name``.

        Raises:
            InvalidEventError: the name or a type pattern is invalid.
        """
        if not _QUERY_NAME.fullmatch(name):
            raise InvalidEventError(
                f"invalid query name {name!r}; use up to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        for pattern in types:
            subjects.validate_pattern(pattern)
        with self._log.transaction() as connection:
            connection.execute(
                "INSERT INTO saved_queries (name, types, conditions) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET types = excluded.types, conditions = excluded.conditions",
                (name, json.dumps(list(types)), json.dumps(dict(where), ensure_ascii=False)),
            )
        return self.get(name)

    def get(self, name: str) -> SavedQuery:
        """Return the query ``name``.

        Raises:
            NotFoundError: no query has that name.
        """
        row = self._log.connection.execute(
            "SELECT name, types, conditions, created_at FROM saved_queries WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            known = ", ".join(query.name for query in self.all()) or "none saved yet"
            raise NotFoundError(f"no saved query named {name!r}; saved queries: {known}")
        return _row(row)

    def all(self) -> list[SavedQuery]:
        """Return every saved query, sorted by name."""
        return saved_queries_in(self._log.connection)

    def delete(self, name: str) -> None:
        """Delete the query ``name``.

        Raises:
            NotFoundError: no query has that name.
        """
        self.get(name)
        with self._log.transaction() as connection:
            connection.execute("DELETE FROM saved_queries WHERE name = ?", (name,))


def saved_queries_in(connection: sqlite3.Connection) -> list[SavedQuery]:
    """Return every saved query through ``connection``, sorted by name; none before the table exists."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'saved_queries'"
    ).fetchone()
    if not exists:
        return []
    rows = connection.execute("SELECT name, types, conditions, created_at FROM saved_queries ORDER BY name").fetchall()
    return [_row(row) for row in rows]


def _row(row: Sequence[Any]) -> SavedQuery:
    return SavedQuery(name=str(row[0]), types=tuple(json.loads(row[1])), where=json.loads(row[2]),
                      created_at=str(row[3]))


