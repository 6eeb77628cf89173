"""Full-text search over touchpoints (SQLite FTS5, bm25 ranking).

A durable consumer of the same file events as the touchpoint index, plus its
``touchpoint.updated`` summaries. For each one it copies the named file's rows
from the ``touchpoints`` table into the FTS5 table, inside the transaction
that advances its checkpoint. Because the runtime runs the touchpoint index
first, the search index always equals the touchpoint index at the same log
position, whether built incrementally or by a rebuild. Queries match whole
words or word prefixes in names, descriptions, paths and annotated symbols.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from mcp_server.store.base import StoredEvent
from mcp_server.store.sqlite import fts_query

__all__ = ["SearchHit", "SearchIndex", "fts_query"]

_SNIPPET_TOKENS = 12


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One ranked search result."""

    name: str
    path: str
    line: int
    description: str
    language: str
    score: float
    snippet: str
    symbol: str | None = None
    symbol_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the hit as the tools show it; symbol fields only when a symbol was found."""
        hit: dict[str, Any] = {
            "name": self.name,
            "path": self.path,
            "line": self.line,
            "description": self.description,
            "language": self.language,
            "score": round(self.score, 4),
            "snippet": self.snippet,
        }
        if self.symbol is not None:
            hit.update(symbol=self.symbol, symbol_kind=self.symbol_kind)
        return hit


class SearchIndex:
    """Durable consumer that keeps the ``touchpoint_search`` FTS5 table."""

    name = "search"
    version = 2
    subscriptions = ("file.saved", "code.modified", "code.deleted", "touchpoint.updated")
    depends_on = ("touchpoints",)
    emits: tuple[str, ...] = ()

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the FTS5 table."""
        connection.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS touchpoint_search USING fts5("
            "name, description, path, symbol, language UNINDEXED, line UNINDEXED, symbol_kind UNINDEXED,"
            " tokenize = 'unicode61')"
        )

    def drop(self, connection: sqlite3.Connection) -> None:
        """Drop the FTS5 table."""
        connection.execute("DROP TABLE IF EXISTS touchpoint_search")

    @staticmethod
    def coalesce_key(event: StoredEvent) -> str | None:
        """Group events of one file: each copies the file's current rows, so the last one covers the rest."""
        path = event.payload.get("path")
        return f"path:{path}" if isinstance(path, str) else None

    def prepare(self, event: StoredEvent) -> None:
        """Nothing to prepare: the rows come from the touchpoint index."""
        return None

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: None) -> list[dict[str, Any]]:
        """Copy the named file's touchpoints from the index into the FTS5 table."""
        path = event.payload.get("path")
        if not isinstance(path, str):
            return []
        connection.execute("DELETE FROM touchpoint_search WHERE path = ?", (path,))
        connection.execute(
            "INSERT INTO touchpoint_search (name, description, path, symbol, language, line, symbol_kind) "
            "SELECT name, description, path, symbol, language, line, symbol_kind FROM touchpoints WHERE path = ?",
            (path,),
        )
        return []

    @staticmethod
    def search(connection: sqlite3.Connection, text: str, *, limit: int = 20) -> list[SearchHit]:
        """Return up to ``limit`` touchpoints matching ``text``, best first."""
        query = fts_query(text)
        if not query:
            return []
        rows = connection.execute(
            "SELECT name, path, line, description, language, bm25(touchpoint_search, 10.0, 2.0, 1.0, 3.0), "
            f"snippet(touchpoint_search, -1, '[', ']', '…', {_SNIPPET_TOKENS}), symbol, symbol_kind "
            "FROM touchpoint_search WHERE touchpoint_search MATCH ? "
            "ORDER BY bm25(touchpoint_search, 10.0, 2.0, 1.0, 3.0), path, line LIMIT ?",
            (query, limit),
        ).fetchall()
        return [
            SearchHit(name=row[0], path=row[1], line=int(row[2]), description=row[3], language=row[4],
                      score=-float(row[5]), snippet=row[6], symbol=row[7], symbol_kind=row[8])
            for row in rows
        ]
