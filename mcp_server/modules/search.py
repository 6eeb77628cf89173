"""Full-text search over touchpoints (SQLite FTS5, bm25 ranking).

A durable consumer of the same file events as the touchpoint index, plus its
``touchpoint.updated`` summaries. For each one it copies the named file's rows
from the ``touchpoints`` table into the FTS5 table, inside the transaction
that advances its checkpoint. Because the runtime runs the touchpoint index
first, the search index always equals the touchpoint index at the same log
position, whether built incrementally or by a rebuild. Queries match whole
words or word prefixes in names, descriptions, paths and annotated symbols.

Ranking is bm25 with the weights of :data:`_WEIGHTS`, ties broken by path and
line. FTS5 scores every hit before it sorts, so the cost grows with the hit
count: ranking 50,000 hits took 100 to 130 ms on a 2-vCPU virtual machine
(``bench/bench_search.py``). A query with more than
:data:`EXACT_RANKING_LIMIT` hits is therefore ranked over
:data:`RANKED_CANDIDATES` of them, chosen without scoring. Every other query
gets the full ranking. :meth:`SearchIndex.search` describes which hits are chosen,
and the returned :class:`SearchHits` carry a note when they come from that bounded ranking.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any

from mcp_server.store.base import StoredEvent, text_tokens
from mcp_server.store.sqlite import fts_query

__all__ = ["SearchHit", "SearchHits", "SearchIndex", "fts_query"]

_SNIPPET_TOKENS = 12

EXACT_RANKING_LIMIT = 2000
"""Queries with at most this many hits are ranked over all of them, as FTS5 ranks them."""

RANKED_CANDIDATES = 1000
"""Hits ranked for a query with more than :data:`EXACT_RANKING_LIMIT` hits."""

NAME_MATCHES_READ = 4
"""Name matches read per candidate, in rowid order, to pick those with the fewest name words among them."""

_COPIED = "name, description, path, symbol, language, line, symbol_kind"
"""Columns of a touchpoint copied into the FTS5 table, in its column order."""


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


class SearchHits(list[SearchHit]):
    """Ranked hits, best first, with ``note`` set when only some of the query's hits were ranked."""

    def __init__(self, hits: list[SearchHit] | None = None, note: str | None = None) -> None:
        super().__init__(hits or [])
        self.note = note


class SearchIndex:
    """Durable consumer that keeps the ``touchpoint_search`` FTS5 table."""

    name = "search"
    version = 4
    subscriptions = ("file.saved", "code.modified", "code.deleted", "touchpoint.updated")
    depends_on = ("touchpoints",)
    prepare_inline = True  # prepare does no I/O; see mcp_server.consumers.Projection
    emits: tuple[str, ...] = ()

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the FTS5 table and the table that lists each file's FTS5 rows."""
        connection.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS touchpoint_search USING fts5("
            "name, description, path, symbol, language UNINDEXED, line UNINDEXED, symbol_kind UNINDEXED,"
            " tokenize = 'unicode61')"
        )
        # FTS5 cannot index a column for equality, so `DELETE ... WHERE path = ?` read every row;
        # this table finds a file's rowids through a B-tree index instead. Its name index finds
        # the touchpoints named exactly as a query, which a bounded ranking must not miss.
        connection.execute(
            "CREATE TABLE IF NOT EXISTS touchpoint_search_rows "
            "(id INTEGER PRIMARY KEY, path TEXT NOT NULL, name TEXT NOT NULL, name_words INTEGER NOT NULL)"
        )
        connection.execute("CREATE INDEX IF NOT EXISTS touchpoint_search_rows_by_path ON touchpoint_search_rows (path)")
        connection.execute(
            "CREATE INDEX IF NOT EXISTS touchpoint_search_rows_by_name ON touchpoint_search_rows (name COLLATE NOCASE)"
        )

    def drop(self, connection: sqlite3.Connection) -> None:
        """Drop the FTS5 table and its row list."""
        connection.execute("DROP TABLE IF EXISTS touchpoint_search")
        connection.execute("DROP TABLE IF EXISTS touchpoint_search_rows")

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
        rows = connection.execute(
            f"SELECT {_COPIED} FROM touchpoints WHERE path = ? ORDER BY line, rowid", (path,)
        ).fetchall()
        copied = connection.execute(
            f"SELECT {_COPIED} FROM touchpoint_search "
            "WHERE rowid IN (SELECT id FROM touchpoint_search_rows WHERE path = ?) ORDER BY rowid",
            (path,),
        ).fetchall()
        # A file's event and the touchpoint.updated it causes find the same rows; FTS5 rewrites cost more.
        if copied == rows:
            return []
        connection.execute(
            "DELETE FROM touchpoint_search WHERE rowid IN (SELECT id FROM touchpoint_search_rows WHERE path = ?)",
            (path,),
        )
        connection.execute("DELETE FROM touchpoint_search_rows WHERE path = ?", (path,))
        if not rows:
            return []
        # Both tables always change together, so an id free in the row list is free in the FTS5 table too.
        first = int(connection.execute("SELECT coalesce(max(id), 0) + 1 FROM touchpoint_search_rows").fetchone()[0])
        ids = range(first, first + len(rows))
        connection.executemany(
            "INSERT INTO touchpoint_search_rows (id, path, name, name_words) VALUES (?, ?, ?, ?)",
            [(id_, path, row[0], len(text_tokens(row[0]))) for id_, row in zip(ids, rows)],
        )
        connection.executemany(
            f"INSERT INTO touchpoint_search (rowid, {_COPIED}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(id_, *row) for id_, row in zip(ids, rows)],
        )
        return []

    @staticmethod
    def search(
        connection: sqlite3.Connection,
        text: str,
        *,
        limit: int = 20,
        exact_limit: int = EXACT_RANKING_LIMIT,
        candidates: int = RANKED_CANDIDATES,
    ) -> SearchHits:
        """Return up to ``limit`` touchpoints matching ``text``, best first.

        A query with at most ``exact_limit`` hits is ranked over all of them.
        One with more is ranked over ``candidates`` of its hits: touchpoints
        named exactly ``text`` (ignoring ASCII case) first, then those whose
        name matches the query, fewest name words first, then the earliest
        indexed others. Each returned hit keeps the score it has in the full
        ranking, but a hit outside the candidates is never returned, and the
        result's ``note`` then explains why.
        """
        query = fts_query(text)
        if not query or limit <= 0:
            return SearchHits()
        if limit > candidates:
            return SearchHits(_rank_all(connection, query, limit))
        # For a prefix term FTS5 merges the doclists of all matching terms before the first row,
        # but it reads whole words lazily. So one word is counted as a whole word first, which
        # finds a common word cheaply, and candidates come from the whole words when they have
        # enough hits. Several words match fewer rows, so they go to the prefix count at once.
        whole_words = query.removesuffix("*")
        if '" "' not in query and _more_hits_than(connection, whole_words, exact_limit):
            source = whole_words
        elif _more_hits_than(connection, query, exact_limit):
            source = whole_words if _more_hits_than(connection, whole_words, candidates) else query
        else:
            return SearchHits(_rank_all(connection, query, limit))
        chosen = _candidates(connection, text.strip(), source, candidates)
        note = (
            f"the query matches more than {exact_limit:,} touchpoints, so only {len(chosen):,} of them were ranked: "
            "exact name matches, then matching names of the fewest words, then others; refine the query to rank all hits"
        )
        return SearchHits(_rank_candidates(connection, query, chosen, limit), note)


_WEIGHTS = "10.0, 2.0, 1.0, 3.0"
"""bm25 weights of the name, description, path and symbol columns."""

_SELECT_HIT = (
    f"name, path, line, description, language, bm25(touchpoint_search, {_WEIGHTS}), "
    f"snippet(touchpoint_search, -1, '[', ']', '…', {_SNIPPET_TOKENS}), symbol, symbol_kind"
)


def _hit(row: tuple[Any, ...]) -> SearchHit:
    return SearchHit(name=row[0], path=row[1], line=int(row[2]), description=row[3], language=row[4],
                     score=-float(row[5]), snippet=row[6], symbol=row[7], symbol_kind=row[8])


def _rank_all(connection: sqlite3.Connection, query: str, limit: int) -> list[SearchHit]:
    """Rank every hit of ``query``; FTS5 scores each one and builds its snippet before the sort."""
    rows = connection.execute(
        f"SELECT {_SELECT_HIT} FROM touchpoint_search WHERE touchpoint_search MATCH ? "
        f"ORDER BY bm25(touchpoint_search, {_WEIGHTS}), path, line LIMIT ?",
        (query, limit),
    ).fetchall()
    return [_hit(row) for row in rows]


def _more_hits_than(connection: sqlite3.Connection, query: str, count: int) -> bool:
    """Return whether ``query`` matches more than ``count`` rows, reading at most ``count + 1`` of them unscored."""
    found = connection.execute(
        "SELECT count(*) FROM (SELECT rowid FROM touchpoint_search WHERE touchpoint_search MATCH ? LIMIT ?)",
        (query, count + 1),
    ).fetchone()[0]
    return int(found) > count


def _candidates(connection: sqlite3.Connection, name: str, query: str, count: int) -> list[int]:
    """Return up to ``count`` rowids of hits of ``query``, in the order they are chosen.

    First the touchpoints named ``name``, through the name index, then name
    matches of ``query``, those with the fewest words in their name first, then
    the lowest other rowids. No step scores rows. The name column has the
    largest bm25 weight, so the best hits of a query with many hits are almost
    always name matches, and among those a name with fewer words scores higher.
    Equal word counts go by path, as ties of the full ranking do.
    """
    chosen = [int(row[0]) for row in connection.execute(
        "SELECT id FROM touchpoint_search_rows WHERE name = ? COLLATE NOCASE ORDER BY id LIMIT ?", (name, count)
    )]
    seen = set(chosen)
    # NOTE: only the first count * NAME_MATCHES_READ name matches by rowid are read, so with more
    # than that a name of fewer words indexed later can still be left out.
    name_matches = connection.execute(
        "SELECT id FROM touchpoint_search_rows WHERE id IN "
        "(SELECT rowid FROM touchpoint_search WHERE touchpoint_search MATCH ? LIMIT ?) ORDER BY name_words, path, id",
        (f"{{name}} : ({query})", count * NAME_MATCHES_READ),
    )
    _extend(chosen, seen, (int(rowid) for (rowid,) in name_matches), count)
    if len(chosen) < count:
        others = connection.execute(
            "SELECT rowid FROM touchpoint_search WHERE touchpoint_search MATCH ? LIMIT ?", (query, count * 2)
        )
        _extend(chosen, seen, (int(rowid) for (rowid,) in others), count)
    return chosen


def _extend(chosen: list[int], seen: set[int], rowids: Iterable[int], count: int) -> None:
    """Append the ``rowids`` not in ``seen`` to ``chosen`` until it has ``count`` of them."""
    for rowid in rowids:
        if len(chosen) >= count:
            return
        if rowid not in seen:
            seen.add(rowid)
            chosen.append(rowid)


def _rank_candidates(connection: sqlite3.Connection, query: str, rowids: list[int], limit: int) -> list[SearchHit]:
    """Rank the hits of ``query`` among ``rowids``.

    The ``+`` before ``rowid`` keeps SQLite from turning ``IN`` into one FTS5
    lookup per rowid, which restarts the full-text query for each (1.4 s for
    2,000 rowids of a 50,000-row table). Instead FTS5 reads the hits up to the
    largest rowid unscored, and only those in the list are scored and get a snippet.
    """
    if not rowids:
        return []
    rows = connection.execute(
        f"SELECT {_SELECT_HIT} FROM touchpoint_search WHERE touchpoint_search MATCH ? AND rowid <= ? "
        "AND +rowid IN (SELECT value FROM json_each(?)) "
        f"ORDER BY bm25(touchpoint_search, {_WEIGHTS}), path, line LIMIT ?",
        (query, max(rowids), json.dumps(rowids), limit),
    ).fetchall()
    return [_hit(row) for row in rows]
