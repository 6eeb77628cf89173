"""What happens after ``schema.updated``: a durable consumer named ``schema``.

For each ``schema.updated`` event, in the transaction that advances its
checkpoint, it

1. applies the event to the ``event_schemas`` table (a no-op when the process
   that appended the event already did, and the way the table is rebuilt by
   ``eventsync rebuild schema``);
2. reports stored queries the change breaks: a saved query that filters on a
   removed payload field or selects a deleted type, and a module subscription
   to a deleted type. Each becomes a ``query.invalidated`` event and a warning;
3. rewrites the Markdown reference file and makes the query layer reload
   the payload fields it accepts.

Writing the reference is the one side effect outside the database; it is
idempotent, and a failure to write it is logged without stopping the consumer.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mcp_server import ids, subjects
from mcp_server.errors import ConfigurationError
from mcp_server.events import make_event
from mcp_server.schema.queries import SavedQueries, SavedQuery, saved_queries_in
from mcp_server.schema.reference import render_markdown, write_reference
from mcp_server.schema.table import StoredSchema, create_schema_table, load_schemas, upsert_schema
from mcp_server.store.base import StoredEvent

__all__ = ["SchemaReactions"]

logger = logging.getLogger(__name__)

QUERY_INVALIDATED = "query.invalidated"


def _is_exact(pattern: str) -> bool:
    return "*" not in pattern.split(".") and ">" not in pattern.split(".")


class SchemaReactions:
    """Durable consumer of ``schema.updated`` that keeps the schema table, reports and reference current."""

    name = "schema"
    version = 1
    subscriptions = ("schema.updated",)
    depends_on: tuple[str, ...] = ()
    prepare_inline = True  # prepare does no I/O; see mcp_server.consumers.Projection
    emits = (QUERY_INVALIDATED,)

    def __init__(self, reference_path: str, on_change: Callable[[], None] = lambda: None) -> None:
        """Write the reference to ``reference_path``; call ``on_change`` after each applied event."""
        self.reference_path = reference_path
        self._on_change = on_change

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the schema table (saved queries are created with it but never dropped)."""
        create_schema_table(connection)
        SavedQueries.create(connection)

    def drop(self, connection: sqlite3.Connection) -> None:
        """Drop the schema table; the log's ``schema.updated`` events rebuild it."""
        connection.execute("DROP TABLE IF EXISTS event_schemas")

    def prepare(self, event: StoredEvent) -> None:
        """Nothing to prepare: everything comes from the event and the database."""
        return None

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: None) -> list[dict[str, Any]]:
        """Apply the change to the table, report broken queries and rewrite the reference."""
        payload: Mapping[str, Any] = event.payload
        self._apply_to_table(connection, event.position, payload)
        schemas = load_schemas(connection)
        reports = list(self._reports(connection, event, payload, schemas))
        try:
            write_reference(self.reference_path, render_markdown(schemas))
        except ConfigurationError as exc:
            # Contained on purpose: the table and reports matter more than the file, and the next change rewrites it.
            logger.warning("schema: %s", exc)
        self._on_change()
        return reports

    @staticmethod
    def _apply_to_table(connection: sqlite3.Connection, position: int, payload: Mapping[str, Any]) -> None:
        current = load_schemas(connection)
        for name, entry in (payload.get("schemas") or {}).items():
            row = current.get(name)
            if row is None or row.updated_position < position:
                upsert_schema(connection, name, entry, position)
        for item in payload.get("deleted") or []:
            connection.execute(
                "DELETE FROM event_schemas WHERE type = ? AND updated_position < ?", (item.get("type"), position)
            )

    # -- reports ---------------------------------------------------------------------

    def _reports(
        self,
        connection: sqlite3.Connection,
        event: StoredEvent,
        payload: Mapping[str, Any],
        schemas: Mapping[str, StoredSchema],
    ) -> Iterator[dict[str, Any]]:
        changes = list(payload.get("modified") or []) + list(payload.get("deleted") or [])
        deleted = [item for item in payload.get("deleted") or [] if isinstance(item, dict)]
        for query in saved_queries_in(connection):
            for change in changes:
                for field in _broken_fields(query, change, schemas):
                    yield self._report(event, query.name, "saved", change, field)
        for module, patterns in _module_subscriptions(connection):
            for change in deleted:
                for pattern in patterns:
                    if not subjects.matches(pattern, str(change.get("type"))):
                        continue
                    if _is_exact(pattern) or not any(subjects.matches(pattern, name) for name in schemas):
                        yield self._report(event, module, "subscription", change, None)

    def _report(
        self, cause: StoredEvent, query: str, kind: str, change: Mapping[str, Any], field: str | None
    ) -> dict[str, Any]:
        event_type = str(change.get("type"))
        if field is None:
            logger.warning(
                "%s %r selects event type %s, which schema.updated %s removed; update or delete it",
                "saved query" if kind == "saved" else "subscription of module", query, event_type, cause.id,
            )
        else:
            logger.warning(
                "saved query %r filters on %s.%s, which version %s of %s removed; update or delete the query",
                query, event_type, field, change.get("new_version"), event_type,
            )
        body = {
            "query": query,
            "kind": kind,
            "type": event_type,
            "field": field,
            "old_version": change.get("old_version"),
            "new_version": change.get("new_version"),
            "schema_event_id": cause.id,
        }
        event_id = ids.derived_event_id(QUERY_INVALIDATED, cause.id, kind, query, event_type, field or "")
        return make_event(QUERY_INVALIDATED, body, source="module:schema", cause=cause, event_id=event_id)


def _broken_fields(query: SavedQuery, change: Mapping[str, Any], schemas: Mapping[str, StoredSchema]) -> list[Any]:
    """Return the fields (or ``[None]`` for a whole deleted type) of ``query`` that ``change`` breaks."""
    event_type = str(change.get("type"))
    removed = set(change.get("removed_fields") or [])
    if query.types:
        if not any(subjects.matches(pattern, event_type) for pattern in query.types):
            return []
        broken: list[Any] = sorted(field for field in query.where if field in removed)
        if change.get("new_version") is None and event_type in query.types:
            broken.append(None)
        return broken
    # A query over every type breaks only when no type declares the field any more.
    return sorted(
        field for field in query.where
        if field in removed and not any(field in row.fields for row in schemas.values())
    )


def _module_subscriptions(connection: sqlite3.Connection) -> list[tuple[str, list[str]]]:
    exists = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'loaded_modules'").fetchone()
    if not exists:
        return []
    rows = connection.execute("SELECT name, capabilities FROM loaded_modules ORDER BY name").fetchall()
    return [(str(name), list(json.loads(capabilities).get("subscriptions", []))) for name, capabilities in rows]
