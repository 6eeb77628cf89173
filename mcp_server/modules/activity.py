"""Notifications and analytics: two modules that react to project-management events.

Both are durable consumers, so their tables are projections of the log:

* :class:`Notifications` turns the events people should hear about (a project
  created, a task assigned or unblocked, a bottleneck, a webhook that gave up)
  into one readable line each, kept in ``notifications`` and shown by
  ``eventsync notifications``.
* :class:`Analytics` counts project and task events per day, type and
  project in ``analytics_daily``, which ``eventsync stats`` summarises.

Neither emits events, so replaying the log rebuilds them exactly.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from mcp_server.store.base import StoredEvent

__all__ = ["Analytics", "Notifications", "notification_text"]

_PM_TYPES = ("project.created", "task.>", "project.progress.updated", "bottleneck.detected")


def notification_text(event: StoredEvent) -> str | None:
    """Return the line a person should read about ``event``, or None when it needs none."""
    payload = event.payload
    if event.type == "project.created":
        return f"project {payload.get('title', payload.get('project_id'))!r} created"
    if event.type == "task.assigned":
        return f"task {payload.get('task_id')!r} assigned to {payload.get('assignee', payload.get('person_id'))}"
    if event.type == "task.unblocked":
        return f"task {payload.get('task_id')!r} can start: {payload.get('unblocked_by')!r} no longer blocks it"
    if event.type == "bottleneck.detected":
        return f"bottleneck in project {payload.get('project_id')!r}: {payload.get('reason')}"
    if event.type == "integration.failed":
        return f"webhook {payload.get('url')!r} gave up on event {payload.get('event_id')!r}: {payload.get('error')}"
    return None


class Notifications:
    """Durable consumer that keeps the ``notifications`` table."""

    name = "notifications"
    version = 1
    subscriptions = ("project.created", "task.assigned", "task.unblocked", "bottleneck.detected", "integration.failed")
    depends_on: tuple[str, ...] = ()
    prepare_inline = True  # prepare does no I/O; see mcp_server.consumers.Projection
    emits: tuple[str, ...] = ()

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the table."""
        connection.execute(
            "CREATE TABLE IF NOT EXISTS notifications (position INTEGER PRIMARY KEY, event_id TEXT NOT NULL, "
            "type TEXT NOT NULL, timestamp TEXT NOT NULL, message TEXT NOT NULL)"
        )

    def drop(self, connection: sqlite3.Connection) -> None:
        """Drop the table."""
        connection.execute("DROP TABLE IF EXISTS notifications")

    def prepare(self, event: StoredEvent) -> str | None:
        """Word the notification; no I/O."""
        return notification_text(event)

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, message: str | None) -> list[dict[str, Any]]:
        """Store the notification line."""
        if message is not None:
            connection.execute(
                "INSERT OR REPLACE INTO notifications (position, event_id, type, timestamp, message) VALUES (?, ?, ?, ?, ?)",
                (event.position, event.id, event.type, event.timestamp, message),
            )
        return []

    @staticmethod
    def recent(connection: sqlite3.Connection, limit: int = 50) -> list[dict[str, Any]]:
        """Return the newest notifications first."""
        rows = connection.execute(
            "SELECT position, event_id, type, timestamp, message FROM notifications ORDER BY position DESC LIMIT ?",
            (limit,),
        ).fetchall()
        keys = ("position", "event_id", "type", "timestamp", "message")
        return [dict(zip(keys, row, strict=True)) for row in rows]


class Analytics:
    """Durable consumer that counts project and task events per day, type and project."""

    name = "analytics"
    version = 1
    subscriptions = _PM_TYPES
    depends_on: tuple[str, ...] = ()
    prepare_inline = True  # prepare does no I/O; see mcp_server.consumers.Projection
    emits: tuple[str, ...] = ()

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the table."""
        connection.execute(
            "CREATE TABLE IF NOT EXISTS analytics_daily (day TEXT NOT NULL, type TEXT NOT NULL, project TEXT NOT NULL, "
            "count INTEGER NOT NULL, PRIMARY KEY (day, type, project)) WITHOUT ROWID"
        )

    def drop(self, connection: sqlite3.Connection) -> None:
        """Drop the table."""
        connection.execute("DROP TABLE IF EXISTS analytics_daily")

    def prepare(self, event: StoredEvent) -> None:
        """Nothing to prepare."""
        return None

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: None) -> list[dict[str, Any]]:
        """Count the event under its day, type and project."""
        project = event.payload.get("project_id")
        connection.execute(
            "INSERT INTO analytics_daily (day, type, project, count) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (day, type, project) DO UPDATE SET count = count + 1",
            (event.timestamp[:10], event.type, project if isinstance(project, str) else ""),
        )
        return []

    @staticmethod
    def summary(connection: sqlite3.Connection, days: int = 7) -> list[dict[str, Any]]:
        """Return counts per day and type for the newest ``days`` days that had events."""
        rows = connection.execute(
            "SELECT day, type, sum(count) FROM analytics_daily WHERE day IN "
            "(SELECT DISTINCT day FROM analytics_daily ORDER BY day DESC LIMIT ?) GROUP BY day, type "
            "ORDER BY day DESC, type",
            (days,),
        ).fetchall()
        return [{"day": day, "type": event_type, "count": int(count)} for day, event_type, count in rows]
