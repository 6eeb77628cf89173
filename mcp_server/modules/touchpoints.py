"""The touchpoint index: which ``@touchpoint`` names exist, and where.

A durable consumer of ``file.saved``, ``code.modified`` and ``code.deleted``.
For each event it re-extracts only the file named in the payload, replaces
that file's rows in the index, and emits ``touchpoint.added`` and
``touchpoint.removed`` for each change plus one ``touchpoint.updated`` summary
per file (or ``touchpoint.skipped`` when the file cannot be scanned). Files
are read at processing time, so the index follows the file on disk even when
several saves arrive at once.

Extraction happens in :meth:`TouchpointIndex.prepare`, outside the write
transaction. The cache key of a file is its content hash, the extractor
version and :func:`configuration_fingerprint`, so an unchanged file is not
rewritten and a changed configuration re-extracts exactly the files it affects.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
from dataclasses import dataclass
from typing import Any

from mcp_server import ids, paths
from mcp_server.events import make_event
from mcp_server.store.base import StoredEvent
from mcp_server.touchpoints import (
    EXTRACTOR_VERSION,
    MAX_FILE_BYTES,
    MAX_NOTEBOOK_BYTES,
    Extraction,
    Extractor,
    Touchpoint,
    extract,
)
from mcp_server.touchpoints.symbols import tree_sitter_available

__all__ = [
    "MAX_SUMMARY_TOUCHPOINTS",
    "TouchpointIndex",
    "TouchpointRow",
    "configuration_fingerprint",
    "diff_touchpoints",
]

logger = logging.getLogger(__name__)

MAX_SUMMARY_TOUCHPOINTS = 2000
"""Touchpoints listed in one ``touchpoint.updated``; keeps the event under the payload limit."""


@dataclass(frozen=True, slots=True)
class TouchpointRow:
    """One location of a touchpoint in the index, and the tools' output for it.

    The fields are those of :class:`mcp_server.touchpoints.Touchpoint` plus ``path``,
    the project-relative file.
    """

    name: str
    path: str
    line: int
    column: int
    description: str
    language: str
    cell: int | None = None
    symbol: str | None = None
    symbol_kind: str | None = None
    symbol_start: int | None = None
    symbol_end: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the row as the tools and events show it; symbol fields only when a symbol was found."""
        row: dict[str, Any] = {
            "name": self.name,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "description": self.description,
            "language": self.language,
        }
        if self.cell is not None:
            row["cell"] = self.cell
        if self.symbol is not None:
            row.update(symbol=self.symbol, symbol_kind=self.symbol_kind,
                       symbol_start=self.symbol_start, symbol_end=self.symbol_end)
        return row


_COLUMNS = "name, path, line, column, description, language, cell, symbol, symbol_kind, symbol_start, symbol_end"


def configuration_fingerprint(
    *, max_file_bytes: int = MAX_FILE_BYTES, max_notebook_bytes: int = MAX_NOTEBOOK_BYTES,
    symbols: bool | None = None,
) -> str:
    """Return the part of a file's cache key that depends on configuration rather than content.

    It covers the size limits and whether tree-sitter grammars are installed,
    because each changes what the same bytes extract to. A file whose stored
    fingerprint differs is extracted again on its next event or full index.
    """
    parsers = tree_sitter_available() if symbols is None else symbols
    return f"size={max_file_bytes};notebook={max_notebook_bytes};tree-sitter={int(parsers)}"


@dataclass(frozen=True, slots=True)
class _Scan:
    """Result of :meth:`TouchpointIndex.prepare` for one file."""

    path: str
    deleted: bool
    content_hash: str | None = None
    extraction: Extraction | None = None


def diff_touchpoints(
    old: list[TouchpointRow], new: list[TouchpointRow]
) -> tuple[list[TouchpointRow], list[TouchpointRow], list[tuple[TouchpointRow, TouchpointRow]]]:
    """Return ``(added, removed, moved)`` between two lists of one file's touchpoints.

    Occurrences of one name pair up in line order, so a name that moved is
    reported as moved, not as removed plus added.
    """
    def by_name(rows: list[TouchpointRow]) -> dict[str, list[TouchpointRow]]:
        grouped: dict[str, list[TouchpointRow]] = {}
        for row in sorted(rows, key=lambda r: (r.cell or 0, r.line, r.column)):
            grouped.setdefault(row.name, []).append(row)
        return grouped

    old_by_name, new_by_name = by_name(old), by_name(new)
    added: list[TouchpointRow] = []
    removed: list[TouchpointRow] = []
    moved: list[tuple[TouchpointRow, TouchpointRow]] = []
    for name in sorted(old_by_name.keys() | new_by_name.keys()):
        before, after = old_by_name.get(name, []), new_by_name.get(name, [])
        for previous, current in zip(before, after):
            if previous != current:
                moved.append((previous, current))
        added.extend(after[len(before):])
        removed.extend(before[len(after):])
    return added, removed, moved


def _where(name: str | None, path: str | None) -> tuple[str, list[str]]:
    clauses: list[str] = []
    parameters: list[str] = []
    for column, value in (("name", name), ("path", path)):
        if value is not None:
            clauses.append(f"{column} = ?")
            parameters.append(value)
    return " AND ".join(clauses) or "1", parameters


class TouchpointIndex:
    """Durable consumer that keeps the ``touchpoints`` table in step with the files."""

    name = "touchpoints"
    version = 2
    subscriptions = ("file.saved", "code.modified", "code.deleted")
    depends_on: tuple[str, ...] = ()
    emits = ("touchpoint.added", "touchpoint.removed", "touchpoint.updated", "touchpoint.skipped")

    def __init__(self, root: str, *, fingerprint: str | None = None) -> None:
        self.root = root
        self._fingerprint = fingerprint
        # Saves of a file the server already extracted re-scan and re-parse only what changed.
        self._extractor = Extractor()

    @property
    def fingerprint(self) -> str:
        """Configuration part of every file's cache key; see :func:`configuration_fingerprint`."""
        if self._fingerprint is None:
            self._fingerprint = configuration_fingerprint()
        return self._fingerprint

    # -- schema ----------------------------------------------------------------------

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the index tables."""
        connection.execute(
            """CREATE TABLE IF NOT EXISTS touchpoints (
                path TEXT NOT NULL, name TEXT NOT NULL, line INTEGER NOT NULL, column INTEGER NOT NULL,
                description TEXT NOT NULL, language TEXT NOT NULL, cell INTEGER,
                symbol TEXT, symbol_kind TEXT, symbol_start INTEGER, symbol_end INTEGER
            )"""
        )
        connection.execute("CREATE INDEX IF NOT EXISTS touchpoints_by_name ON touchpoints (name, path, line)")
        connection.execute("CREATE INDEX IF NOT EXISTS touchpoints_by_path ON touchpoints (path, line)")
        connection.execute(
            """CREATE TABLE IF NOT EXISTS touchpoint_files (
                path TEXT PRIMARY KEY, content_hash TEXT, extractor_version INTEGER NOT NULL,
                configuration TEXT NOT NULL DEFAULT '',
                language TEXT, skipped TEXT, warnings TEXT NOT NULL DEFAULT ''
            ) WITHOUT ROWID"""
        )

    def drop(self, connection: sqlite3.Connection) -> None:
        """Drop the index tables."""
        connection.execute("DROP TABLE IF EXISTS touchpoints")
        connection.execute("DROP TABLE IF EXISTS touchpoint_files")

    # -- handling --------------------------------------------------------------------

    @staticmethod
    def coalesce_key(event: StoredEvent) -> str | None:
        """Group saves of one file: the file is read at processing time, so the last save covers the rest."""
        path = event.payload.get("path")
        return f"path:{path}" if isinstance(path, str) else None

    def prepare(self, event: StoredEvent) -> _Scan:
        """Read and scan the file the event names.

        Raises:
            PathOutsideProjectError: the payload's path escapes the project root.
            ValueError: the payload has no ``path``.
        """
        path = event.payload.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError(f"event {event.id} ({event.type}) has no 'path' in its payload")
        absolute = paths.resolve_in_project(self.root, path)
        relative = paths.to_project_path(self.root, absolute) or path

        if event.type == "code.deleted" or not os.path.isfile(absolute):
            self._extractor.forget(relative)
            return _Scan(relative, deleted=True)
        if os.path.getsize(absolute) > MAX_NOTEBOOK_BYTES:  # the largest limit; extract() applies the exact one
            skipped = Extraction(language=None, touchpoints=(), skipped="size", warnings=())
            return _Scan(relative, deleted=False, content_hash=None, extraction=skipped)

        with open(absolute, "rb") as handle:
            data = handle.read()
        content_hash = "sha256:" + hashlib.sha256(data).hexdigest()
        # A full index reads thousands of files once each, so keeping their state would only cost memory.
        if event.payload.get("origin") == "index":
            extraction = extract(relative, data)
        else:
            extraction = self._extractor.extract(relative, data)
        return _Scan(relative, deleted=False, content_hash=content_hash, extraction=extraction)

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, scan: _Scan) -> list[dict[str, Any]]:
        """Replace the file's rows and return the touchpoint events describing the change."""
        previous_file = connection.execute(
            "SELECT content_hash, extractor_version, skipped, configuration FROM touchpoint_files WHERE path = ?",
            (scan.path,),
        ).fetchone()
        if (
            previous_file is not None
            and not scan.deleted
            and scan.content_hash is not None
            and previous_file[0] == scan.content_hash
            and previous_file[1] == EXTRACTOR_VERSION
            and previous_file[3] == self.fingerprint
        ):
            return []

        old_rows = self.rows_for_path(connection, scan.path)
        new_rows = self._rows_from_scan(scan)
        self._store(connection, scan, new_rows)
        return self._events(event, scan, old_rows, new_rows, previous_skip=previous_file[2] if previous_file else None)

    def _rows_from_scan(self, scan: _Scan) -> list[TouchpointRow]:
        if scan.deleted or scan.extraction is None:
            return []
        language = scan.extraction.language or ""
        return [self._row(scan.path, language, touchpoint) for touchpoint in scan.extraction.touchpoints]

    @staticmethod
    def _row(path: str, language: str, touchpoint: Touchpoint) -> TouchpointRow:
        return TouchpointRow(
            name=touchpoint.name,
            path=path,
            line=touchpoint.line,
            column=touchpoint.column,
            description=touchpoint.description,
            language=touchpoint.language or language,
            cell=touchpoint.cell,
            symbol=touchpoint.symbol,
            symbol_kind=touchpoint.symbol_kind,
            symbol_start=touchpoint.symbol_start,
            symbol_end=touchpoint.symbol_end,
        )

    def _store(self, connection: sqlite3.Connection, scan: _Scan, rows: list[TouchpointRow]) -> None:
        connection.execute("DELETE FROM touchpoints WHERE path = ?", (scan.path,))
        if scan.deleted:
            connection.execute("DELETE FROM touchpoint_files WHERE path = ?", (scan.path,))
            return
        connection.executemany(
            f"INSERT INTO touchpoints ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(row.name, row.path, row.line, row.column, row.description, row.language, row.cell,
              row.symbol, row.symbol_kind, row.symbol_start, row.symbol_end) for row in rows],
        )
        extraction = scan.extraction
        warnings = "\n".join(extraction.warnings) if extraction else ""
        if extraction and extraction.warnings:
            logger.warning("touchpoints: %s: %s", scan.path, "; ".join(extraction.warnings))
        connection.execute(
            "INSERT OR REPLACE INTO touchpoint_files"
            " (path, content_hash, extractor_version, configuration, language, skipped, warnings)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (scan.path, scan.content_hash, EXTRACTOR_VERSION, self.fingerprint,
             extraction.language if extraction else None, extraction.skipped if extraction else None, warnings),
        )

    def _events(
        self,
        cause: StoredEvent,
        scan: _Scan,
        old_rows: list[TouchpointRow],
        new_rows: list[TouchpointRow],
        *,
        previous_skip: str | None,
    ) -> list[dict[str, Any]]:
        def derived(event_type: str, payload: dict[str, Any], *key: object) -> dict[str, Any]:
            event_id = ids.derived_event_id(self.name, cause.id, event_type, *(str(part) for part in key))
            return make_event(event_type, payload, source="module:touchpoints", cause=cause, event_id=event_id)

        events: list[dict[str, Any]] = []
        skipped = scan.extraction.skipped if scan.extraction else None
        if skipped and skipped != previous_skip:
            logger.warning("touchpoints: skipped %s (reason: %s)", scan.path, skipped)
            events.append(derived("touchpoint.skipped", {"path": scan.path, "reason": skipped}, scan.path))

        added, removed, moved = diff_touchpoints(old_rows, new_rows)
        for row in added:
            events.append(derived("touchpoint.added", row.to_dict(), row.name, row.line, row.column))
        for row in removed:
            events.append(derived("touchpoint.removed", row.to_dict(), row.name, row.line, row.column))
        if not (added or removed or moved):
            return events

        summary = {
            "path": scan.path,
            "deleted": scan.deleted,
            "added": sorted({row.name for row in added}),
            "removed": sorted({row.name for row in removed}),
            "moved": [_move(old, new) for old, new in moved],
            "touchpoints": [row.to_dict() for row in new_rows[:MAX_SUMMARY_TOUCHPOINTS]],
            "truncated": len(new_rows) > MAX_SUMMARY_TOUCHPOINTS,
        }
        events.append(derived("touchpoint.updated", summary, scan.path, scan.content_hash or "deleted"))
        return events

    # -- queries ---------------------------------------------------------------------

    @staticmethod
    def rows_for_path(connection: sqlite3.Connection, path: str) -> list[TouchpointRow]:
        """Return the index rows of one file in line order."""
        return TouchpointIndex.query(connection, path=path)

    @staticmethod
    def query(
        connection: sqlite3.Connection, *, name: str | None = None, path: str | None = None,
        limit: int | None = None, offset: int = 0,
    ) -> list[TouchpointRow]:
        """Return index rows filtered by exact name and path, ordered by name, path and line."""
        where, parameters = _where(name, path)
        sql = (
            f"SELECT {_COLUMNS} FROM touchpoints "
            f"WHERE {where} ORDER BY name, path, coalesce(cell, 0), line, column LIMIT ? OFFSET ?"
        )
        rows = connection.execute(sql, (*parameters, -1 if limit is None else limit, offset)).fetchall()
        return [TouchpointRow(*row) for row in rows]

    @staticmethod
    def count(connection: sqlite3.Connection, *, name: str | None = None, path: str | None = None) -> int:
        """Return how many rows :meth:`query` would return without a limit."""
        where, parameters = _where(name, path)
        return int(connection.execute(f"SELECT count(*) FROM touchpoints WHERE {where}", parameters).fetchone()[0])


def _move(old: TouchpointRow, new: TouchpointRow) -> dict[str, Any]:
    """Describe one occurrence that changed place or text: its new row and its previous location."""
    move = new.to_dict()
    move.update(from_line=old.line, to_line=new.line, from_column=old.column, from_symbol=old.symbol)
    if old.description != new.description:
        move["from_description"] = old.description
    return move


def check_index(connection: sqlite3.Connection, root: str) -> list[dict[str, Any]]:
    """Return lint findings for the indexed files, ordered by path and line.

    Three kinds, each with ``path``, ``line``, ``kind`` and ``message``:
    ``"duplicate"`` for a name written twice in one file, ``"malformed"`` for
    an extractor warning such as a marker without a name, and
    ``"annotates-nothing"`` for a marker with no symbol and no code after it.
    """
    findings: list[dict[str, Any]] = []
    duplicates = connection.execute(
        "SELECT path, name, group_concat(line) FROM touchpoints GROUP BY path, name HAVING count(*) > 1"
    )
    for path, name, lines in duplicates:
        numbers = sorted(int(line) for line in str(lines).split(","))
        for line in numbers[1:]:
            findings.append(_finding(path, line, "duplicate",
                                     f"touchpoint {name!r} is also at line {numbers[0]} of this file"))

    for path, warnings in connection.execute("SELECT path, warnings FROM touchpoint_files WHERE warnings != ''"):
        for warning in str(warnings).split("\n"):
            line = _warning_line(warning)
            message = warning.partition(": ")[2] if line else warning
            findings.append(_finding(path, line, "malformed", message))

    orphans = connection.execute(
        "SELECT path, name, line, column, language FROM touchpoints WHERE symbol IS NULL AND cell IS NULL"
        " ORDER BY path, line"
    ).fetchall()
    findings += _orphan_findings(root, orphans)
    return sorted(findings, key=lambda finding: (finding["path"], finding["line"], finding["kind"]))


def _finding(path: str, line: int, kind: str, message: str) -> dict[str, Any]:
    return {"path": path, "line": line, "kind": kind, "message": message}


def _warning_line(warning: str) -> int:
    """Return the line an extractor warning names ("line 12: ..."), or 0 for a whole-file warning."""
    head, _, _ = warning.partition(":")
    words = head.split()
    if len(words) >= 2 and words[-2] == "line" and words[-1].isdigit():
        return int(words[-1])
    return 0


def _orphan_findings(root: str, rows: list[Any]) -> list[dict[str, Any]]:
    from mcp_server.touchpoints.extract import decode_text
    from mcp_server.touchpoints.symbols import followed_by_code

    findings: list[dict[str, Any]] = []
    texts: dict[str, str | None] = {}
    for path, name, line, column, language in rows:
        if path not in texts:
            try:
                with open(paths.resolve_in_project(root, path), "rb") as handle:
                    texts[path] = decode_text(handle.read())
            except OSError:
                texts[path] = None
        text = texts[path]
        if text is None or language not in _scannable_languages():
            continue
        if not followed_by_code(text, language, line, column):
            findings.append(_finding(path, line, "annotates-nothing",
                                     f"touchpoint {name!r} is followed by no code; move it above the code it names"))
    return findings


def _scannable_languages() -> frozenset[str]:
    from mcp_server.touchpoints.languages import LANGUAGES

    return frozenset(LANGUAGES)
