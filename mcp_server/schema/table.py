"""The persisted registry: the last schema seen per event type, and ``schema.updated``.

The ``event_schemas`` table in the log's database holds, for each type that
had a payload model, its version, owner, description and JSON Schema.
:func:`sync_registry` compares it with the in-process
:class:`~mcp_server.schema.registry.SchemaRegistry` and, when they differ,
appends one ``schema.updated`` event and updates the table **in the same
transaction**, so two processes starting together report a change once.
The event's id derives from the table's state before and after, so a
concurrent duplicate is dropped by the log as well.

``schema.updated`` carries each new entry, which makes the table a projection
of the log: :class:`~mcp_server.schema.reactions.SchemaReactions` applies the
events again when the table is rebuilt.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_server import ids
from mcp_server.events import make_event
from mcp_server.schema.registry import PayloadSchema, SchemaRegistry, schema_fingerprint
from mcp_server.store.base import EventFilter, StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog

__all__ = ["StoredSchema", "create_schema_table", "load_schemas", "schema_changes", "sync_registry"]

SCHEMA_UPDATED = "schema.updated"


@dataclass(frozen=True, slots=True)
class StoredSchema:
    """One row of ``event_schemas``."""

    type: str
    version: int
    owner: str
    description: str
    json_schema: dict[str, Any]
    fingerprint: str
    updated_position: int

    @property
    def fields(self) -> tuple[str, ...]:
        """Top-level payload fields, sorted."""
        return tuple(sorted(self.json_schema.get("properties", {})))


def create_schema_table(connection: sqlite3.Connection) -> None:
    """Create ``event_schemas`` if it does not exist (inside the caller's transaction)."""
    connection.execute(
        """CREATE TABLE IF NOT EXISTS event_schemas (
            type TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            owner TEXT NOT NULL,
            description TEXT NOT NULL,
            json_schema TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            updated_position INTEGER NOT NULL
        ) WITHOUT ROWID"""
    )


def _schema_table_exists(connection: sqlite3.Connection) -> bool:
    return connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'event_schemas'"
    ).fetchone() is not None


def load_schemas(connection: sqlite3.Connection) -> dict[str, StoredSchema]:
    """Return every stored schema by type; empty when the table does not exist yet."""
    if not _schema_table_exists(connection):
        return {}
    rows = connection.execute(
        "SELECT type, version, owner, description, json_schema, fingerprint, updated_position FROM event_schemas"
    ).fetchall()
    return {
        str(row[0]): StoredSchema(
            type=str(row[0]),
            version=int(row[1]),
            owner=str(row[2]),
            description=str(row[3]),
            json_schema=json.loads(row[4]),
            fingerprint=str(row[5]),
            updated_position=int(row[6]),
        )
        for row in rows
    }


def upsert_schema(
    connection: sqlite3.Connection, event_type: str, entry: Mapping[str, Any], position: int
) -> None:
    """Store ``entry`` (version, owner, description, json_schema) for ``event_type`` as of ``position``."""
    json_schema = entry.get("json_schema") or {}
    connection.execute(
        "INSERT INTO event_schemas (type, version, owner, description, json_schema, fingerprint, updated_position) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (type) DO UPDATE SET version = excluded.version, "
        "owner = excluded.owner, description = excluded.description, json_schema = excluded.json_schema, "
        "fingerprint = excluded.fingerprint, updated_position = excluded.updated_position",
        (
            event_type,
            int(entry.get("version") or 1),
            str(entry.get("owner") or ""),
            str(entry.get("description") or ""),
            json.dumps(json_schema, sort_keys=True, ensure_ascii=False),
            schema_fingerprint(json_schema),
            position,
        ),
    )


def _entry(schema: PayloadSchema) -> dict[str, Any]:
    return {
        "version": schema.version,
        "owner": schema.owner,
        "description": schema.description,
        "json_schema": schema.json_schema,
    }


def _properties(json_schema: Mapping[str, Any]) -> dict[str, str]:
    properties = json_schema.get("properties", {})
    return {name: schema_fingerprint(value) for name, value in properties.items()}


def _field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str]]:
    before, after = _properties(old), _properties(new)
    return {
        "added_fields": sorted(after.keys() - before.keys()),
        "removed_fields": sorted(before.keys() - after.keys()),
        "changed_fields": sorted(name for name in before.keys() & after.keys() if before[name] != after[name]),
    }


def schema_changes(
    stored: Mapping[str, StoredSchema], current: Iterable[PayloadSchema]
) -> dict[str, Any] | None:
    """Return the ``schema.updated`` payload turning ``stored`` into ``current``, or None if they agree."""
    now = {schema.type: schema for schema in current}
    added: list[dict[str, Any]] = []
    modified: list[dict[str, Any]] = []
    deleted: list[dict[str, Any]] = []
    for name in sorted(now.keys() - stored.keys()):
        schema = now[name]
        added.append({"type": name, "old_version": None, "new_version": schema.version, "owner": schema.owner,
                      "added_fields": list(schema.fields), "removed_fields": [], "changed_fields": []})
    for name in sorted(now.keys() & stored.keys()):
        schema, previous = now[name], stored[name]
        if (schema.version, schema.owner, schema.fingerprint) == (previous.version, previous.owner, previous.fingerprint):
            continue
        modified.append({"type": name, "old_version": previous.version, "new_version": schema.version,
                         "owner": schema.owner, **_field_changes(previous.json_schema, schema.json_schema)})
    for name in sorted(stored.keys() - now.keys()):
        previous = stored[name]
        deleted.append({"type": name, "old_version": previous.version, "new_version": None, "owner": previous.owner,
                        "added_fields": [], "removed_fields": list(previous.fields), "changed_fields": []})
    if not (added or modified or deleted):
        return None
    changed = [item["type"] for item in added + modified]
    return {
        "added": added,
        "modified": modified,
        "deleted": deleted,
        "schemas": {name: _entry(now[name]) for name in changed},
    }


def _state_key(fingerprints: Mapping[str, tuple[int, str, str]]) -> str:
    return json.dumps(sorted((name, *value) for name, value in fingerprints.items()))


def sync_registry(log: SQLiteEventLog, registry: SchemaRegistry, *, source: str = "module:schema") -> StoredEvent | None:
    """Record the registry's schemas; append and return ``schema.updated`` if any type changed.

    Returns None when the table already matched, or when another process
    recorded the same change first.
    """
    current = registry.entries()
    # Checked before taking the write lock, so a server starts while another process holds the lock.
    if _schema_table_exists(log.connection) and schema_changes(load_schemas(log.connection), current) is None:
        return None
    with log.transaction() as connection:
        create_schema_table(connection)
        stored = load_schemas(connection)
        payload = schema_changes(stored, current)
        if payload is None:
            return None

        # The previous schema.updated is part of the key: a schema that changes back and
        # forth (A to B, B to A, A to B) must get a new id each time, or the log drops it.
        previous = log.query(EventFilter(types=(SCHEMA_UPDATED,)), limit=1).events
        before = _state_key({name: (row.version, row.owner, row.fingerprint) for name, row in stored.items()})
        after = _state_key({entry.type: (entry.version, entry.owner, entry.fingerprint) for entry in current})
        event_id = ids.derived_event_id(SCHEMA_UPDATED, previous[0].id if previous else "", before, after)
        appended = log.append_in(connection, [make_event(SCHEMA_UPDATED, payload, source=source, event_id=event_id)])
        if not appended:
            return None

        position = appended[0].position
        for name, entry in payload["schemas"].items():
            upsert_schema(connection, name, entry, position)
        for item in payload["deleted"]:
            connection.execute("DELETE FROM event_schemas WHERE type = ?", (item["type"],))
        return appended[0]
