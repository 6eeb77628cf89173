"""Query plans of :meth:`SQLiteEventLog.query <mcp_server.store.sqlite.SQLiteEventLog.query>`.

A page comes out in position order and must stop after ``limit`` rows, so
every statement walks an index in position order and tests the other
conditions on the rows it meets. A filter becomes one or more *branches*:
statements over disjoint position ranges whose rows together are the matches.

**Time bounds.** An event ingested late (a hook event from the inbox, a
teammate's event from the relay) keeps its own timestamp, so time order and
position order differ. An event is *in order* when no earlier position has a
later timestamp. The ``events_out_of_order`` table lists the others, and
``events_time_order`` records how far the list is complete. In-order events are
sorted by time as well as by position, which turns a time bound into a position
bound:

* ``until T``: every event at or below the last in-order event with a
  timestamp <= T matches. Above it only listed events, and events not yet
  checked, can match, and a branch of their own reads those.
* ``since S``: no event below the first in-order event with a timestamp >= S
  matches. Above it the timestamp is still tested, for listed events.

**Text.** Rows come from the FTS5 index in rowid (position) order, joined to
``events`` for the other conditions, so a page reads about as many matches as
it returns. A type condition is also put into the FTS5 query as a phrase on the
``type`` column, so a rare type does not make the join read every text match.
With a correlation id or a payload field, which usually select few events, the
rows come from their index instead and each is looked up in the FTS5 index. A
prefix word (``check*``) costs more than a whole word, because FTS5 merges the
lists of every word it matches before it returns the first row.

**Sessions.** A session covers a stretch of the log, so its first and last
positions bound every branch. When the selected types have fewer events than
that stretch, the type index is read instead of the session index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mcp_server.store.base import EventFilter, text_terms, text_tokens

__all__ = ["Branch", "count_matches", "event_text_query", "plan", "read_page", "record_time_order", "repair_time_order"]

COLUMNS = "events.position, events.id, events.type, events.timestamp, events.source, events.payload, events.metadata"

MAX_TEXT_TYPES = 32
"""Maximum number of event types a text query puts into its FTS5 expression. With more, only the join tests the type."""

_TEXT_SOURCE = "events_text CROSS JOIN events ON events.position = events_text.rowid"
_TEXT_CHECK = "EXISTS (SELECT 1 FROM events_text WHERE events_text MATCH ? AND events_text.rowid = events.position)"


def event_text_query(text: str) -> str:
    """Turn a text filter into an FTS5 expression with the meaning of :func:`~mcp_server.store.base.text_matches`.

    Returns an empty string when ``text`` has no words. Each word becomes a
    quoted phrase of its tokens, so FTS5 operators in the input are not parsed.
    """
    phrases = ['"' + " ".join(tokens) + '"' + ("*" if prefix else "") for tokens, prefix in text_terms(text)]
    return " ".join(phrases)


def _with_types(expression: str, types: Sequence[str]) -> str:
    """Add to ``expression`` a condition that the ``type`` column begins with the words of one of ``types``."""
    phrases = " OR ".join('^"' + " ".join(text_tokens(event_type)) + '"' for event_type in types)
    return f"{expression} AND type : ({phrases})"


def _text_types(types: list[str] | None, known: list[str]) -> tuple[list[str], bool]:
    """Return the types worth putting into the FTS5 expression, and whether that expression selects exactly them.

    The phrase of ``task.done`` also accepts ``task.done.late``, and that of
    ``a-b.c`` accepts ``a_b.c``. When no other stored type has such words, the
    join need not test the type, so a count reads the FTS5 index alone.
    """
    if not types or len(types) >= len(known) or len(types) > MAX_TEXT_TYPES:
        return [], False
    selected = [tuple(text_tokens(event_type)) for event_type in types]
    others = [tuple(text_tokens(event_type)) for event_type in known if event_type not in types]
    exact = not any(other[: len(words)] == words for words in selected for other in others)
    return types, exact


@dataclass(frozen=True, slots=True)
class Branch:
    """One statement of a plan: conditions on ``events`` and an inclusive range of positions.

    ``match`` is set when the FTS5 index drives the scan, and ``position`` is
    then ``events_text.rowid``, so the range reaches FTS5 as rowid bounds.
    ``listed_until`` is set when the branch reads only out-of-order events with
    a timestamp up to it, which it finds through ``events_out_of_order``. The
    range is kept as one lower and one upper bound, because SQLite limits a scan
    by one bound of each kind and tests any others on every row it reads.
    """

    position: str
    clauses: tuple[str, ...]
    parameters: tuple[object, ...]
    low: int | None = None
    high: int | None = None
    match: str | None = None
    listed_until: str | None = None

    def after_cursor(self, cursor: int | None, descending: bool) -> Branch:
        """Return this branch limited to the positions past ``cursor`` in the order of the page."""
        if cursor is None:
            return self
        if descending:
            return replace(self, high=_lower(self.high, cursor - 1))
        return replace(self, low=_higher(self.low, cursor + 1))

    def is_empty(self) -> bool:
        return self.low is not None and self.high is not None and self.low > self.high

    def condition(self) -> tuple[str, tuple[object, ...]]:
        """Return the WHERE clause and its parameters."""
        clauses = ["events_text MATCH ?"] if self.match is not None else []
        arguments: list[object] = [self.match] if self.match is not None else []
        clauses.extend(self.clauses)
        arguments.extend(self.parameters)
        if self.listed_until is not None:
            clauses.append(
                "events.position IN (SELECT position FROM events_out_of_order "
                "WHERE position BETWEEN ? AND ? AND timestamp <= ?)"
            )
            arguments.extend([self.low or 0, self.high if self.high is not None else _MAX_POSITION, self.listed_until])
            return " AND ".join(clauses), tuple(arguments)
        for operator, bound in ((">=", self.low), ("<=", self.high)):
            if bound is not None:
                clauses.append(f"{self.position} {operator} ?")
                arguments.append(bound)
        return " AND ".join(clauses) or "1", tuple(arguments)


_MAX_POSITION = 2**63 - 1


def _higher(bound: int | None, other: int | None) -> int | None:
    """Return the higher of two lower bounds, where None is no bound."""
    if bound is None:
        return other
    if other is None:
        return bound
    return max(bound, other)


def _lower(bound: int | None, other: int | None) -> int | None:
    """Return the lower of two upper bounds, where None is no bound."""
    if bound is None:
        return other
    if other is None:
        return bound
    return min(bound, other)


def plan(
    connection: sqlite3.Connection,
    query: EventFilter,
    *,
    types: list[str] | None,
    type_counts: dict[str, int],
    checked_through: int,
) -> list[Branch]:
    """Return the branches that read the matches of ``query``, without empty ones.

    ``types`` are the stored types the type patterns match (None without
    patterns), and ``type_counts`` the number of events of every type ever stored.
    ``checked_through`` is the position up to which ``events_out_of_order`` is
    complete, read in the same transaction as the statements will run.
    """
    clauses, parameters = _conditions(query)
    if types is not None:
        clauses.insert(0, f"events.type IN ({', '.join('?' * len(types))})" if types else "0")
        parameters[:0] = types
    low = None if query.after is None else query.after + 1
    high = None if query.before is None else query.before - 1
    if query.since is not None:
        low = _higher(low, _first_in_order_since(connection, query.since, checked_through))
        # The unary + keeps the planner on the position range instead of events_by_timestamp.
        clauses.append("+events.timestamp >= ?")
        parameters.append(query.since)

    if query.session_id is not None:
        # A session covers a stretch of the log, so scans can skip the events outside it.
        first, last_in_session = _session_span(connection, query.session_id)
        low, high = _higher(low, first), _lower(high, last_in_session)
        if types and sum(type_counts.get(name, 0) for name in types) < last_in_session - first:
            # Fewer events of these types exist than the session's stretch holds, so the type index reads
            # fewer rows. The unary + keeps the planner off events_by_session, which it would pick otherwise.
            clauses[clauses.index("events.session_id = ?")] = "+events.session_id = ?"

    match = event_text_query(query.text) if query.text is not None else ""
    text_driven = bool(match) and query.correlation_id is None and not query.payload_equals
    # Branches read from ``events`` look each row up in the FTS5 index instead.
    checked_clauses = (*clauses, _TEXT_CHECK) if match else tuple(clauses)
    checked_parameters = (*parameters, match) if match else tuple(parameters)

    def main(upper: int | None) -> Branch:
        if text_driven:
            return _text_branch(match, clauses, parameters, types, list(type_counts), low, upper)
        return Branch("events.position", checked_clauses, checked_parameters, low, upper)

    if query.until is None:
        branches = [main(high)]
    else:
        last = _last_in_order_until(connection, query.until, checked_through)
        # Out-of-order events above ``last`` and events not yet checked are read by position, one branch each.
        # NOTE: this is fast while they are few. A large backlog ingested late, such as a teammate's week of
        # events arriving through the relay, makes every until query read all of it.
        branches = [
            main(_lower(high, last)),
            Branch("events.position", checked_clauses, checked_parameters, _higher(low, last + 1),
                   _lower(high, checked_through), listed_until=query.until),
            Branch("events.position", (*checked_clauses, "+events.timestamp <= ?"), (*checked_parameters, query.until),
                   _higher(low, checked_through + 1), high),
        ]
    return [branch for branch in branches if not branch.is_empty()]


def _text_branch(
    match: str,
    clauses: list[str],
    parameters: list[object],
    types: list[str] | None,
    known_types: list[str],
    low: int | None,
    high: int | None,
) -> Branch:
    """Return a branch that reads FTS5 matches in rowid order, with the type condition in the FTS5 expression when it helps."""
    text_types, exact = _text_types(types, known_types)
    if not text_types:
        return Branch("events_text.rowid", tuple(clauses), tuple(parameters), low, high, match=match)
    expression = _with_types(match, text_types)
    if not exact:
        return Branch("events_text.rowid", tuple(clauses), tuple(parameters), low, high, match=expression)
    # The type condition is the first clause, and the expression now selects exactly those types.
    return Branch("events_text.rowid", tuple(clauses[1:]), tuple(parameters[len(text_types):]), low, high,
                  match=expression)


def _session_span(connection: sqlite3.Connection, session_id: str) -> tuple[int, int]:
    """Return the first and last positions of the session's events, or an empty range when it has none."""
    first, last = connection.execute(
        "SELECT (SELECT min(position) FROM events WHERE session_id = ?), "
        "(SELECT max(position) FROM events WHERE session_id = ?)",
        (session_id, session_id),
    ).fetchone()
    return (1, 0) if first is None else (int(first), int(last))


def _conditions(query: EventFilter) -> tuple[list[str], list[object]]:
    """Return the conditions of ``query`` on the columns of ``events`` other than type, position and time."""
    clauses: list[str] = []
    parameters: list[object] = []
    for clause, value in (
        ("events.source = ?", query.source),
        ("events.session_id = ?", query.session_id),
        ("events.correlation_id = ?", query.correlation_id),
    ):
        if value is not None:
            clauses.append(clause)
            parameters.append(value)
    for key, value in query.payload_equals:
        clauses.append(f"json_extract(events.payload, '$.{key}') = ?")
        parameters.append(value)
    return clauses, parameters


def _first_in_order_since(connection: sqlite3.Connection, since: str, checked_through: int) -> int:
    """Return the position of the first in-order event with a timestamp >= ``since``, else the first unchecked one."""
    row = connection.execute(
        "SELECT position FROM events INDEXED BY events_by_timestamp WHERE timestamp >= ? AND position <= ? "
        "AND NOT EXISTS (SELECT 1 FROM events_out_of_order AS listed WHERE listed.position = events.position) "
        "ORDER BY timestamp, position LIMIT 1",
        (since, checked_through),
    ).fetchone()
    return int(row[0]) if row else checked_through + 1


def _last_in_order_until(connection: sqlite3.Connection, until: str, checked_through: int) -> int:
    """Return the position of the last in-order event with a timestamp <= ``until``, or 0."""
    row = connection.execute(
        "SELECT position FROM events INDEXED BY events_by_timestamp WHERE timestamp <= ? AND position <= ? "
        "AND NOT EXISTS (SELECT 1 FROM events_out_of_order AS listed WHERE listed.position = events.position) "
        "ORDER BY timestamp DESC, position DESC LIMIT 1",
        (until, checked_through),
    ).fetchone()
    return int(row[0]) if row else 0


def read_page(
    connection: sqlite3.Connection, branches: list[Branch], *, limit: int, cursor: int | None, descending: bool
) -> list[tuple[object, ...]]:
    """Return up to ``limit`` rows of every branch together, in position order from ``cursor`` on."""
    order = "DESC" if descending else "ASC"
    rows: list[tuple[object, ...]] = []
    for branch in branches:
        branch = branch.after_cursor(cursor, descending)
        if branch.is_empty():
            continue
        where, arguments = branch.condition()
        source = _TEXT_SOURCE if branch.match is not None else "events"
        rows.extend(connection.execute(
            f"SELECT {COLUMNS} FROM {source} WHERE {where} ORDER BY {branch.position} {order} LIMIT ?",
            (*arguments, limit),
        ).fetchall())
    if len(branches) > 1:
        rows.sort(key=lambda row: row[0], reverse=descending)  # type: ignore[arg-type, return-value]
    return rows[:limit]


def count_matches(connection: sqlite3.Connection, branches: list[Branch], cap: int) -> tuple[int, bool]:
    """Count the rows of every branch, reading at most ``cap + 1``.

    Returns the count, at most ``cap``, and whether more rows match.
    """
    counted = 0
    for branch in branches:
        if counted > cap:
            break
        if branch.match is None:
            source = "events"
        else:
            # Without other conditions every FTS5 match is an event, so the join is skipped.
            source = _TEXT_SOURCE if branch.clauses else "events_text"
        where, arguments = branch.condition()
        counted += int(connection.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {source} WHERE {where} LIMIT ?)", (*arguments, cap + 1 - counted)
        ).fetchone()[0])
    return min(counted, cap), counted > cap


# -- keeping events_out_of_order ------------------------------------------------------


def record_time_order(connection: sqlite3.Connection, batch: int) -> bool:
    """List the out-of-order events among the next ``batch`` unchecked ones, and return False when none were left.

    Runs inside the caller's write transaction.
    """
    checked, latest = connection.execute("SELECT checked_through, latest_timestamp FROM events_time_order").fetchone()
    rows = connection.execute(
        "SELECT position, timestamp FROM events WHERE position > ? ORDER BY position LIMIT ?", (checked, batch)
    ).fetchall()
    if not rows:
        return False
    out_of_order = []
    for position, timestamp in rows:
        if timestamp < latest:
            out_of_order.append((position, timestamp))
        else:
            latest = timestamp
    connection.executemany("INSERT OR REPLACE INTO events_out_of_order (position, timestamp) VALUES (?, ?)", out_of_order)
    connection.execute(
        "UPDATE events_time_order SET checked_through = ?, latest_timestamp = ?", (rows[-1][0], latest)
    )
    return True


def repair_time_order(connection: sqlite3.Connection, start: int) -> None:
    """Keep ``events_out_of_order`` valid after events at or above position ``start`` were deleted.

    A listed event is out of order because an earlier in-order event is later
    than it. If that event was deleted, ``since`` could skip the listed one, so a
    listed event with no later in-order event before it any more moves to the
    in-order events. Runs inside the caller's write transaction, after the delete.
    """
    connection.execute(
        "DELETE FROM events_out_of_order WHERE position >= ? "
        "AND NOT EXISTS (SELECT 1 FROM events WHERE events.position = events_out_of_order.position)",
        (start,),
    )
    checked = int(connection.execute("SELECT checked_through FROM events_time_order").fetchone()[0])
    if start > checked:
        return

    before = connection.execute(
        "SELECT timestamp FROM events WHERE position < ? "
        "AND NOT EXISTS (SELECT 1 FROM events_out_of_order AS listed WHERE listed.position = events.position) "
        "ORDER BY position DESC LIMIT 1",
        (start,),
    ).fetchone()
    latest = str(before[0]) if before else ""
    previous = start - 1
    now_in_order = []
    listed = connection.execute(
        "SELECT position, timestamp FROM events_out_of_order WHERE position >= ? ORDER BY position", (start,)
    ).fetchall()
    for position, timestamp in [*listed, (checked + 1, None)]:
        # Between two listed events every event is in order, and in-order timestamps never decrease.
        between = connection.execute(
            "SELECT timestamp FROM events WHERE position > ? AND position < ? ORDER BY position DESC LIMIT 1",
            (previous, position),
        ).fetchone()
        if between is not None:
            latest = max(latest, str(between[0]))
        if timestamp is not None and timestamp >= latest:
            now_in_order.append((position,))
            latest = timestamp
        previous = position
    connection.executemany("DELETE FROM events_out_of_order WHERE position = ?", now_in_order)
    connection.execute("UPDATE events_time_order SET latest_timestamp = ?", (latest,))
