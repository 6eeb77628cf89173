"""The context cache: ``get_context(name)`` results, kept until a file they include changes.

``get_context`` returns, for every location of a touchpoint, the code of the
symbol the marker annotates, or a window of lines around the marker when it
annotates none.
Building a result reads files, so results are cached in the log's database (shared
by every process on the project). This module is a durable consumer that
invalidates entries exactly when needed:

* ``file.saved``, ``code.modified`` or ``code.deleted`` for a path drops every
  entry that includes that path;
* ``touchpoint.updated`` also drops the entries of names added to, removed
  from or moved within that file, because their set of locations changed.

An edit made outside the hooks emits no event, so each entry also records the
size and ``mtime_ns`` of its files, and a lookup whose files changed on disk
is a miss. NOTE: a rewrite that keeps the size and lands within the file
system's timestamp granularity (a few milliseconds on Linux) goes unnoticed.

Each invalidation emits one ``context.invalidated`` event naming the entries.
Hit, miss and invalidation counts are kept for statistics.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from mcp_server import ids
from mcp_server.events import make_event
from mcp_server.store.base import StoredEvent
from mcp_server.touchpoints.extract import decode_text

__all__ = ["ContextCache", "FileStamp", "file_stamps"]

FileStamp = tuple[int, int]
"""A file's ``(size, mtime_ns)``, compared to tell whether it changed since an entry was built."""


class ContextCache:
    """Durable consumer that owns the ``context_cache`` tables."""

    name = "context"
    version = 3
    subscriptions = ("file.saved", "code.modified", "code.deleted", "touchpoint.updated")
    depends_on = ("touchpoints",)
    prepare_inline = True  # prepare does no I/O (see mcp_server.consumers.Projection)
    emits = ("context.invalidated",)

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the cache tables."""
        connection.execute(
            "CREATE TABLE IF NOT EXISTS context_cache (name TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID"
        )
        connection.execute(
            # size and mtime_ns are NULL when the file could not be read as the entry was built
            "CREATE TABLE IF NOT EXISTS context_files (path TEXT NOT NULL, name TEXT NOT NULL, size INTEGER,"
            " mtime_ns INTEGER, PRIMARY KEY (path, name)) WITHOUT ROWID"
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS context_stats (counter TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID"
        )

    def drop(self, connection: sqlite3.Connection) -> None:
        """Drop the cache tables."""
        for table in ("context_cache", "context_files", "context_stats"):
            connection.execute(f"DROP TABLE IF EXISTS {table}")

    @staticmethod
    def coalesce_key(event: StoredEvent) -> str | None:
        """Group saves of one file; ``touchpoint.updated`` events stay apart because each names changed touchpoints."""
        path = event.payload.get("path")
        if event.type == "touchpoint.updated" or not isinstance(path, str):
            return None
        return f"path:{path}"

    def prepare(self, event: StoredEvent) -> None:
        """Nothing to prepare: invalidation needs only the event."""
        return None

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: None) -> list[dict[str, Any]]:
        """Drop the entries the event makes stale and report them."""
        path = event.payload.get("path")
        if not isinstance(path, str):
            return []
        names = {row[0] for row in connection.execute("SELECT name FROM context_files WHERE path = ?", (path,))}
        if event.type == "touchpoint.updated":
            names.update(_changed_names(event.payload))
        stale = sorted(name for name in names if self._is_cached(connection, name))
        if not stale:
            return []

        for name in stale:
            connection.execute("DELETE FROM context_cache WHERE name = ?", (name,))
            connection.execute("DELETE FROM context_files WHERE name = ?", (name,))
        self.count(connection, "invalidations", len(stale))
        event_id = ids.derived_event_id(self.name, event.id)
        return [
            make_event(
                "context.invalidated",
                {"names": stale, "path": path, "reason": event.type},
                source="module:context",
                cause=event,
                event_id=event_id,
            )
        ]

    @staticmethod
    def _is_cached(connection: sqlite3.Connection, name: str) -> bool:
        return connection.execute("SELECT 1 FROM context_cache WHERE name = ?", (name,)).fetchone() is not None

    # -- cache access ----------------------------------------------------------------

    @staticmethod
    def lookup(connection: sqlite3.Connection, name: str, root: str) -> dict[str, Any] | None:
        """Return the cached result for ``name``, or None when there is none or one of its files changed on disk."""
        row = connection.execute("SELECT body FROM context_cache WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        recorded = {
            str(path): None if size is None or mtime_ns is None else (int(size), int(mtime_ns))
            for path, size, mtime_ns in connection.execute(
                "SELECT path, size, mtime_ns FROM context_files WHERE name = ?", (name,)
            )
        }
        if file_stamps(root, recorded) != recorded:
            return None
        return json.loads(row[0])  # type: ignore[no-any-return]

    @staticmethod
    def store(
        connection: sqlite3.Connection,
        name: str,
        body: dict[str, Any],
        files: list[str],
        stamps: Mapping[str, FileStamp | None],
    ) -> None:
        """Cache ``body`` for ``name``, remembering which files it includes and their stamps before it was built."""
        connection.execute(
            "INSERT OR REPLACE INTO context_cache (name, body) VALUES (?, ?)", (name, json.dumps(body, ensure_ascii=False))
        )
        connection.execute("DELETE FROM context_files WHERE name = ?", (name,))
        rows = []
        for path in files:
            stamp = stamps.get(path)
            rows.append((path, name, stamp[0] if stamp else None, stamp[1] if stamp else None))
        connection.executemany(
            "INSERT OR IGNORE INTO context_files (path, name, size, mtime_ns) VALUES (?, ?, ?, ?)", rows
        )

    @staticmethod
    def count(connection: sqlite3.Connection, counter: str, amount: int = 1) -> None:
        """Add ``amount`` to a statistics counter."""
        connection.execute(
            "INSERT INTO context_stats (counter, value) VALUES (?, ?) "
            "ON CONFLICT (counter) DO UPDATE SET value = value + excluded.value",
            (counter, amount),
        )

    @staticmethod
    def statistics(connection: sqlite3.Connection) -> dict[str, int]:
        """Return hit, miss and invalidation counts and the number of cached entries."""
        stats = {"hits": 0, "misses": 0, "invalidations": 0}
        stats.update({str(k): int(v) for k, v in connection.execute("SELECT counter, value FROM context_stats")})
        stats["entries"] = int(connection.execute("SELECT count(*) FROM context_cache").fetchone()[0])
        return stats


def file_stamps(root: str, project_paths: Iterable[str]) -> dict[str, FileStamp | None]:
    """Return each project-relative path's ``(size, mtime_ns)``, or None when it cannot be read.

    Take the stamps before reading the files for an entry: an edit between the
    two then shows as a changed stamp at the next lookup instead of going unseen.
    The paths come from the touchpoint index, which holds only paths inside the
    project, so they are joined to ``root`` without resolving symlinks: a cache
    hit then costs one ``stat`` per file.
    """
    stamps: dict[str, FileStamp | None] = {}
    for path in project_paths:
        try:
            status = os.stat(os.path.join(root, path))
        except OSError:
            stamps[path] = None
            continue
        stamps[path] = (status.st_size, status.st_mtime_ns)
    return stamps


def _changed_names(summary: dict[str, Any]) -> set[str]:
    names = set(summary.get("added") or []) | set(summary.get("removed") or [])
    names.update(item.get("name") for item in summary.get("moved") or [] if isinstance(item, dict))
    return {name for name in names if isinstance(name, str)}


CONTEXT_LINES_BEFORE = 3
"""Lines shown above a touchpoint's marker, so the comment around it is visible."""

CONTEXT_LINES_AFTER = 30
"""Lines shown below the marker: enough for a typical function body."""

MAX_CONTEXT_CHARS = 40_000
"""Cap on one result (about 10,000 tokens), well under Claude Code's 25,000-token tool limit."""

MAX_SYMBOL_LINES = 300
"""Lines of one symbol's code shown; a longer class or function is cut there, with a note."""


def _read_window(absolute: str, row: Any) -> tuple[int, int, str, bool]:
    """Return ``(first line, last line, text, cut)`` of the code shown for one index row.

    The code is the annotated symbol from the marker (or the symbol's first
    line, if that comes first) to the symbol's end, cut at
    :data:`MAX_SYMBOL_LINES`. Without a symbol it is a window around the marker.
    """
    with open(absolute, "rb") as handle:
        text = decode_text(handle.read())
    if row.cell is not None:
        text = _notebook_cell(text, row.cell)
    lines = text.splitlines()
    line = row.line
    if getattr(row, "symbol_start", None) and getattr(row, "symbol_end", None) and row.cell is None:
        first = max(1, min(line, row.symbol_start))
        last = min(len(lines), row.symbol_end)
        cut = last - first + 1 > MAX_SYMBOL_LINES
        if cut:
            last = first + MAX_SYMBOL_LINES - 1
    else:
        first = max(1, line - CONTEXT_LINES_BEFORE)
        last = min(len(lines), line + CONTEXT_LINES_AFTER)
        cut = False
    return first, last, "\n".join(lines[first - 1 : last]), cut


def _notebook_cell(text: str, cell: int) -> str:
    """Return the source of one notebook cell, so a location shows that cell rather than the notebook's JSON."""
    try:
        source = json.loads(text)["cells"][cell]["source"]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""
    return "".join(source) if isinstance(source, list) else str(source)


def build_context(root: str, name: str, rows: list[Any]) -> tuple[dict[str, Any], list[str]]:
    """Assemble the answer for ``name`` from its index rows; return it and the files it includes.

    Locations are ordered by file and line. Files that vanished are reported
    in the location's ``error`` instead of failing the whole answer.
    """
    from mcp_server import paths  # local: keeps this module's import light for the hook-free CLI paths

    locations: list[dict[str, Any]] = []
    files: list[str] = []
    used = 0
    truncated = False
    for row in sorted(rows, key=lambda r: (r.path, r.cell or 0, r.line)):
        files.append(row.path)
        location: dict[str, Any] = {"path": row.path, "line": row.line, "language": row.language,
                                    "description": row.description}
        if row.cell is not None:
            location["cell"] = row.cell
        if getattr(row, "symbol", None) is not None:
            location.update(symbol=row.symbol, symbol_kind=row.symbol_kind)
        try:
            first, last, code, cut = _read_window(paths.resolve_in_project(root, row.path), row)
        except OSError as exc:
            location["error"] = f"could not read {row.path!r}: {exc.strerror or exc}"
            locations.append(location)
            continue
        if used + len(code) > MAX_CONTEXT_CHARS:
            truncated = True
            break
        used += len(code)
        location.update({"start_line": first, "end_line": last, "code": code})
        if cut:
            location["note"] = f"symbol cut at {MAX_SYMBOL_LINES} lines; it ends at line {row.symbol_end}"
        locations.append(location)

    body: dict[str, Any] = {"name": name, "locations": locations, "truncated": truncated}
    if truncated:
        body["note"] = (
            f"cut at {MAX_CONTEXT_CHARS} characters: {len(locations)} of {len(rows)} locations shown; "
            "list every location with list_touchpoints ('eventsync touchpoints --name NAME' on the command line)"
        )
    return body, sorted(set(files))
