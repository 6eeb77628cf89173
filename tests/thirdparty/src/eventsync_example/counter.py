"""A durable eventsync module: it counts saves per file in a table of the log's database."""

from __future__ import annotations

import sqlite3
from typing import Any

from mcp_server.modules.loader import EventsyncModule
from mcp_server.store.base import StoredEvent


class SaveCounter:
    """Projection keeping ``example_save_counts`` (path, saves)."""

    name = "example-counter"
    version = 1
    subscriptions = ("file.saved",)
    depends_on: tuple[str, ...] = ()

    def create(self, connection: sqlite3.Connection) -> None:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS example_save_counts (path TEXT PRIMARY KEY, saves INTEGER NOT NULL)"
        )

    def drop(self, connection: sqlite3.Connection) -> None:
        connection.execute("DROP TABLE IF EXISTS example_save_counts")

    def prepare(self, event: StoredEvent) -> None:
        return None

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: None) -> list[dict[str, Any]]:
        connection.execute(
            "INSERT INTO example_save_counts (path, saves) VALUES (?, 1) "
            "ON CONFLICT (path) DO UPDATE SET saves = saves + 1",
            (event.payload["path"],),
        )
        return []


def counter_module() -> EventsyncModule:
    """Return the module declaration; the loader calls this because it takes no arguments."""
    return EventsyncModule(name="example-counter", version="1.2.0", projection=lambda runtime: SaveCounter())
