"""Claude Code sessions as the reconcile projection tracks them.

:class:`SessionBook` owns four tables in the log's database, written by the
reconcile projection (:mod:`mcp_server.modules.reconcile`) inside its
transactions:

* ``reconcile_sessions``: each session's start, end and last activity;
* ``reconcile_touched``: the files each session read or changed, which
  decides who hears about a change made elsewhere;
* ``reconcile_turn``: what the current turn of each session changed, turned
  into a ``session.turn.completed`` summary when Claude Code's ``Stop`` hook
  fires;
* ``reconcile_watch``: the files that hold touchpoints, from which the list
  of paths for Claude Code's file watcher is written.

It also formats the notice lines the hook hands to other sessions
(:func:`describe_change`). Everything here is a pure function of the events,
so a rebuild restores it.
"""

from __future__ import annotations

import calendar
import sqlite3
import time
from typing import Any

from mcp_server import clock
from mcp_server.store.base import StoredEvent

__all__ = [
    "MAX_TURN_PATHS",
    "MAX_WATCH_PATHS",
    "SESSION_IDLE_LIMIT_NS",
    "TURN_KINDS",
    "SessionBook",
    "actor_session",
    "describe_actor",
    "describe_change",
    "describe_touchpoints",
    "timestamp_ns",
]

SESSION_IDLE_LIMIT_NS = 7 * 24 * 3600 * 1_000_000_000
"""A session with no event for this long gets no more notices; it most likely ended without ``SessionEnd``."""

MAX_TURN_PATHS = 50
"""Paths listed per kind in one ``session.turn.completed``; the counts stay exact."""

MAX_WATCH_PATHS = 256
"""Files handed to Claude Code's watcher.

Each watched file costs the client a watch on its folder, and the common
inotify default is 8,192 watches per user, shared by every editor and tool
running. Changes to files beyond the cap are still found by ``git status``
at the next Bash command and at session start and turn end.
"""

TURN_KINDS = ("saved", "deleted", "renamed", "outside", "command")
"""Kinds of turn entries: files the session saved, deleted and renamed, files other programs changed, commands."""


def timestamp_ns(timestamp: str) -> int:
    """Return an event timestamp (``YYYY-MM-DDTHH:MM:SS.ffffffZ``) in nanoseconds since the epoch."""
    seconds = calendar.timegm(time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S"))
    fraction = timestamp[20:].rstrip("Z") if len(timestamp) > 20 and timestamp[19] == "." else ""
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


def actor_session(event: StoredEvent) -> str | None:
    """Return the session that made the change ``event`` records, or None for the CLI and other programs."""
    session = event.metadata.get("session_id")
    return session if isinstance(session, str) and session else None


def describe_actor(event: StoredEvent) -> str:
    """Return who made the change ``event`` records, in words."""
    session = actor_session(event)
    origin = event.payload.get("origin")
    if session is not None:
        via = event.payload.get("tool")
        return f"session {session}" + (f" ({via})" if isinstance(via, str) and via else "")
    if origin == "FileChanged":
        observer = event.payload.get("observed_by")
        if isinstance(observer, str) and observer:
            return f"another program (seen by the file watcher of session {observer})"
        return "another program (seen by a file watcher)"
    if origin == "outside":
        return "another program (found by git status)"
    if event.source == "cli":
        return "the eventsync CLI"
    return f"source {event.source}"


def _when(event: StoredEvent) -> str:
    mtime = event.payload.get("mtime_ns")
    if isinstance(mtime, int) and not isinstance(mtime, bool) and mtime > 0:
        return clock.utc_timestamp(mtime)
    return event.timestamp


def describe_change(event: StoredEvent) -> str | None:
    """Return the notice line for a change event, or None when ``event`` is not a file change."""
    path = event.payload.get("path")
    if not isinstance(path, str):
        return None
    if event.type == "code.deleted":
        renamed_to = event.payload.get("renamed_to")
        verb = f"renamed to {renamed_to}" if isinstance(renamed_to, str) else "deleted"
    elif event.type in ("file.saved", "code.modified"):
        renamed_from = event.payload.get("renamed_from")
        verb = f"created as the new name of {renamed_from}" if isinstance(renamed_from, str) else "changed"
        if event.payload.get("change") == "create":
            verb = "created"
    else:
        return None
    return f"{_when(event)} {path} {verb} by {describe_actor(event)}"


def describe_touchpoints(event: StoredEvent) -> str:
    """Return the part of a notice that lists the touchpoints a change added, removed or moved."""
    parts = []
    for key, label in (("added", "added"), ("removed", "removed")):
        names = event.payload.get(key)
        if isinstance(names, list) and names:
            parts.append(f"touchpoints {label}: {', '.join(str(name) for name in names[:20])}")
    moved = event.payload.get("moved")
    if isinstance(moved, list) and moved:
        parts.append(f"{len(moved)} touchpoints moved")
    return "; ".join(parts)


class SessionBook:
    """Tables of session state kept by the reconcile projection."""

    @staticmethod
    def create(connection: sqlite3.Connection) -> None:
        """Create the session tables."""
        connection.execute(
            """CREATE TABLE IF NOT EXISTS reconcile_sessions (
                session_id TEXT PRIMARY KEY, started_at TEXT, ended_at TEXT,
                last_ns INTEGER NOT NULL DEFAULT 0, turns INTEGER NOT NULL DEFAULT 0
            ) WITHOUT ROWID"""
        )
        connection.execute(
            """CREATE TABLE IF NOT EXISTS reconcile_touched (
                path TEXT NOT NULL, session_id TEXT NOT NULL, how TEXT NOT NULL, position INTEGER NOT NULL,
                PRIMARY KEY (path, session_id)
            ) WITHOUT ROWID"""
        )
        connection.execute(
            """CREATE TABLE IF NOT EXISTS reconcile_turn (
                session_id TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL,
                PRIMARY KEY (session_id, kind, path)
            ) WITHOUT ROWID"""
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS reconcile_watch (path TEXT PRIMARY KEY, position INTEGER NOT NULL)"
            " WITHOUT ROWID"
        )

    @staticmethod
    def drop(connection: sqlite3.Connection) -> None:
        """Drop the session tables."""
        for table in ("reconcile_sessions", "reconcile_touched", "reconcile_turn", "reconcile_watch"):
            connection.execute(f"DROP TABLE IF EXISTS {table}")

    # -- lifecycle -------------------------------------------------------------------

    @staticmethod
    def last_activity_ns(connection: sqlite3.Connection, session_id: str) -> int | None:
        """Return the time of the session's latest event seen so far, or None for an unknown session."""
        row = connection.execute(
            "SELECT last_ns FROM reconcile_sessions WHERE session_id = ?", (session_id,)
        ).fetchone()
        return int(row[0]) if row else None

    @staticmethod
    def seen(connection: sqlite3.Connection, session_id: str, event: StoredEvent) -> None:
        """Record that ``session_id`` was active when ``event`` happened."""
        moment = timestamp_ns(event.timestamp)
        connection.execute(
            "INSERT INTO reconcile_sessions (session_id, last_ns) VALUES (?, ?) "
            "ON CONFLICT (session_id) DO UPDATE SET last_ns = max(last_ns, excluded.last_ns)",
            (session_id, moment),
        )
        if event.type == "session.started":
            connection.execute(
                "UPDATE reconcile_sessions SET started_at = coalesce(started_at, ?), ended_at = NULL"
                " WHERE session_id = ?",
                (event.timestamp, session_id),
            )
        elif event.type == "session.ended":
            connection.execute(
                "UPDATE reconcile_sessions SET ended_at = ? WHERE session_id = ?", (event.timestamp, session_id)
            )
            connection.execute("DELETE FROM reconcile_turn WHERE session_id = ?", (session_id,))

    @staticmethod
    def touch(connection: sqlite3.Connection, session_id: str, path: str, how: str, position: int) -> None:
        """Record that ``session_id`` read (``how="read"``) or changed (``"changed"``) ``path``."""
        connection.execute(
            "INSERT INTO reconcile_touched (path, session_id, how, position) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (path, session_id) DO UPDATE SET position = excluded.position, "
            "how = CASE WHEN how = 'changed' THEN how ELSE excluded.how END",
            (path, session_id, how, position),
        )

    @staticmethod
    def follow_rename(connection: sqlite3.Connection, old_path: str, new_path: str) -> None:
        """Make every session that used ``old_path`` count as using ``new_path`` too."""
        connection.execute(
            "INSERT OR IGNORE INTO reconcile_touched (path, session_id, how, position) "
            "SELECT ?, session_id, how, position FROM reconcile_touched WHERE path = ?",
            (new_path, old_path),
        )

    @staticmethod
    def interested(
        connection: sqlite3.Connection, path: str, actor: str | None, moment_ns: int, change_position: int
    ) -> list[str]:
        """Return the sessions other than ``actor`` that used ``path`` before the change and may still be running."""
        rows = connection.execute(
            "SELECT t.session_id FROM reconcile_touched t JOIN reconcile_sessions s USING (session_id) "
            "WHERE t.path = ? AND t.position < ? AND s.ended_at IS NULL AND s.last_ns >= ? ORDER BY t.session_id",
            (path, change_position, moment_ns - SESSION_IDLE_LIMIT_NS),
        ).fetchall()
        return [str(row[0]) for row in rows if row[0] != actor]

    # -- turns -----------------------------------------------------------------------

    @staticmethod
    def add_to_turn(connection: sqlite3.Connection, session_id: str, kind: str, path: str) -> None:
        """Count ``path`` as ``kind`` (one of ``TURN_KINDS``) in the session's current turn."""
        connection.execute(
            "INSERT OR IGNORE INTO reconcile_turn (session_id, kind, path) VALUES (?, ?, ?)", (session_id, kind, path)
        )

    @staticmethod
    def complete_turn(connection: sqlite3.Connection, session_id: str) -> dict[str, Any]:
        """Return the summary of the session's current turn and start the next one."""
        rows = connection.execute(
            "SELECT kind, path FROM reconcile_turn WHERE session_id = ? ORDER BY kind, path", (session_id,)
        ).fetchall()
        by_kind: dict[str, list[str]] = {kind: [] for kind in TURN_KINDS}
        for kind, path in rows:
            by_kind.setdefault(str(kind), []).append(str(path))
        connection.execute("DELETE FROM reconcile_turn WHERE session_id = ?", (session_id,))
        connection.execute(
            "INSERT INTO reconcile_sessions (session_id, turns) VALUES (?, 1) "
            "ON CONFLICT (session_id) DO UPDATE SET turns = turns + 1",
            (session_id,),
        )
        turn = connection.execute("SELECT turns FROM reconcile_sessions WHERE session_id = ?", (session_id,)).fetchone()
        return {
            "turn": int(turn[0]),
            "files_saved": len(by_kind["saved"]),
            "files_deleted": len(by_kind["deleted"]),
            "files_renamed": len(by_kind["renamed"]),
            "outside_changes": len(by_kind["outside"]),
            "commands": len(by_kind["command"]),
            "saved_paths": by_kind["saved"][:MAX_TURN_PATHS],
            "deleted_paths": by_kind["deleted"][:MAX_TURN_PATHS],
            "truncated": any(len(paths) > MAX_TURN_PATHS for paths in by_kind.values()),
        }

    # -- files with touchpoints, for the watcher -------------------------------------

    @staticmethod
    def set_watched(connection: sqlite3.Connection, path: str, watched: bool, position: int) -> bool:
        """Record whether ``path`` contains touchpoints; return True when that changed."""
        present = connection.execute("SELECT 1 FROM reconcile_watch WHERE path = ?", (path,)).fetchone() is not None
        if watched:
            connection.execute(
                "INSERT OR REPLACE INTO reconcile_watch (path, position) VALUES (?, ?)", (path, position)
            )
        else:
            connection.execute("DELETE FROM reconcile_watch WHERE path = ?", (path,))
        return present != watched

    @staticmethod
    def watched(connection: sqlite3.Connection, limit: int = MAX_WATCH_PATHS) -> list[str]:
        """Return up to ``limit`` files holding touchpoints, most recently changed first."""
        rows = connection.execute(
            "SELECT path FROM reconcile_watch ORDER BY position DESC, path LIMIT ?", (limit,)
        ).fetchall()
        return [str(row[0]) for row in rows]
