"""Benchmark: durable appends to the SQLite event log against raw sqlite3 inserts into the same schema.

The baseline database gets the exact DDL of the log's ``events`` table, its
indexes, its triggers and the ``event_types`` table the triggers write to,
copied from ``sqlite_master`` of a freshly created log. It uses the same
PRAGMAs (WAL, ``synchronous=NORMAL``, the same WAL size limit). It receives
the insert parameters ``validate_event`` produces, so the JSON text is
identical.

* **batch**: ``SQLiteEventLog.append(batch)`` of N events in one call against
  ``BEGIN IMMEDIATE; executemany(INSERT ...); COMMIT``. The log's figure
  includes turning event dicts into rows (validation and JSON encoding) and
  building the returned ``StoredEvent`` objects; the baseline gets rows that
  are already encoded. A third line, the baseline plus ``validate_event``,
  shows how much of the gap is encoding.
* **single**: ``append([event])`` against a one-row transaction
  (``BEGIN IMMEDIATE; INSERT; COMMIT``).

The databases grow side by side and the sides take turns, in reversed order
every other round, so index depth, WAL checkpoints and machine noise hit them
alike. Target: the log at least 0.8x the baseline by wall clock. The ratio by
CPU time of this process is printed beside it, because it moves less when
other programs load the machine.

Usage: python bench/bench_append.py [--quick] [--rounds R] [--singles M]
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from mcp_server.events import make_event
from mcp_server.store.base import validate_event
from mcp_server.store.sqlite import WAL_SIZE_LIMIT, SQLiteEventLog

TARGET = 0.8
BATCH_SIZES = (100, 1_000, 10_000)
SINGLES_PER_TURN = 50
"""Single appends timed per turn before the other side takes over."""

INSERT = (
    "INSERT OR IGNORE INTO events (id, type, timestamp, source, session_id, correlation_id, causation_id, payload,"
    " metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

Row = tuple[object, ...]


def _events(count: int, offset: int) -> list[dict[str, object]]:
    """Return ``count`` file.saved events shaped like the capture hook's."""
    events = []
    for index in range(offset, offset + count):
        payload = {
            "path": f"src/pkg_{index % 50}/module_{index % 5000}.py",
            "tool": "Edit",
            "change": "edit",
            "edits": 1,
            "content_hash": "sha256:" + f"{index * 2654435761 % 2**64:016x}" * 4,
            "size": 1000 + index % 9000,
            "exists": True,
        }
        events.append(make_event("file.saved", payload, source="hook", session_id=f"session-{index // 20_000}"))
    return events


def _baseline_database(path: Path, template: SQLiteEventLog) -> sqlite3.Connection:
    """Create a plain sqlite3 database holding the log's events schema, with the log's PRAGMAs."""
    ddl = [
        sql
        for (sql,) in template.connection.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('events', 'event_types') AND sql IS NOT NULL "
            "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, name"
        )
    ]
    connection = sqlite3.connect(str(path), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    for statement in ddl:
        connection.execute(statement)
    return connection


def _raw_batch(connection: sqlite3.Connection, rows: Sequence[Row]) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany(INSERT, rows)
    connection.execute("COMMIT")


def _raw_single(connection: sqlite3.Connection, row: Row) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(INSERT, row)
    connection.execute("COMMIT")


def _timed(action: Callable[[], object]) -> tuple[float, float]:
    """Return the wall-clock and CPU seconds (this process, user plus system) that ``action`` took."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


class Rates:
    """Events per second of each side by wall clock and by CPU time, collected over turns."""

    def __init__(self) -> None:
        self._samples: dict[tuple[str, str], list[float]] = {}

    def add(self, side: str, count: int, seconds: tuple[float, float]) -> None:
        for clock_name, elapsed in zip(("wall", "cpu"), seconds):
            # A turn shorter than the CPU clock's tick reads as zero CPU time; it carries no CPU sample.
            if elapsed > 0:
                self._samples.setdefault((side, clock_name), []).append(count / elapsed)

    def median(self, side: str, clock_name: str = "wall") -> float:
        return statistics.median(self._samples[(side, clock_name)])


class Sides:
    """The log and the baseline database, growing side by side in one folder."""

    def __init__(self, folder: Path) -> None:
        self.log = SQLiteEventLog(str(folder / "log.db"))
        self.raw = _baseline_database(folder / "raw.db", self.log)
        self.encoded = _baseline_database(folder / "encoded.db", self.log)
        self._offset = 0

    def next_events(self, count: int) -> list[dict[str, object]]:
        events = _events(count, self._offset)
        self._offset += count
        return events

    def close(self) -> None:
        self.log.close()
        self.raw.close()
        self.encoded.close()


def _measure_batches(sides: Sides, rounds: int, sizes: Sequence[int]) -> dict[int, Rates]:
    """Return the rates of each side for each batch size."""
    rates = {size: Rates() for size in sizes}
    for round_index in range(rounds):
        for size in sizes:
            events = sides.next_events(size)
            rows = [validate_event(event) for event in events]
            actions = {
                "log": partial(_log_batch, sides.log, events),
                "raw": partial(_raw_batch, sides.raw, rows),
                "encoded": partial(_encoded_batch, sides.encoded, events),
            }
            order = list(actions) if round_index % 2 == 0 else list(reversed(actions))
            for side in order:
                rates[size].add(side, size, _timed(actions[side]))
    return rates


def _log_batch(log: SQLiteEventLog, events: list[dict[str, object]]) -> None:
    stored = log.append(events)
    if len(stored) != len(events):
        raise SystemExit(f"the log stored {len(stored)} of {len(events)} events; the figure would be wrong")


def _encoded_batch(connection: sqlite3.Connection, events: list[dict[str, object]]) -> None:
    _raw_batch(connection, [validate_event(event) for event in events])


def _log_singles(log: SQLiteEventLog, events: list[dict[str, object]]) -> None:
    for event in events:
        log.append([event])


def _raw_singles(connection: sqlite3.Connection, rows: list[Row]) -> None:
    for row in rows:
        _raw_single(connection, row)


def _measure_singles(sides: Sides, count: int) -> Rates:
    """Return the single-append rates of the log and the baseline, measured in alternating turns."""
    rates = Rates()
    for turn_index in range(max(1, count // SINGLES_PER_TURN)):
        events = sides.next_events(SINGLES_PER_TURN)
        rows = [validate_event(event) for event in events]
        turns = [("log", partial(_log_singles, sides.log, events)), ("raw", partial(_raw_singles, sides.raw, rows))]
        for side, turn in turns if turn_index % 2 == 0 else reversed(turns):
            rates.add(side, SINGLES_PER_TURN, _timed(turn))
    return rates


def _verdict(ratio: float) -> str:
    return "met" if ratio >= TARGET else "MISSED"


def _report(args: argparse.Namespace, batches: dict[int, Rates], singles: Rates) -> None:
    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {platform.machine()}")
    print(f"median of {args.rounds} rounds per batch size; {args.singles} single appends per side\n")
    print("| append | log events/s | raw events/s | log / raw | log / raw, CPU time | raw + validate_event events/s "
          "| target (wall clock) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for size, rates in batches.items():
        ratio = rates.median("log") / rates.median("raw")
        cpu_ratio = rates.median("log", "cpu") / rates.median("raw", "cpu")
        print(f"| batch of {size:,} | {rates.median('log'):,.0f} | {rates.median('raw'):,.0f} | {ratio:.2f}x | "
              f"{cpu_ratio:.2f}x | {rates.median('encoded'):,.0f} | >= {TARGET}x: {_verdict(ratio)} |")
    ratio = singles.median("log") / singles.median("raw")
    cpu_ratio = singles.median("log", "cpu") / singles.median("raw", "cpu")
    print(f"| single event | {singles.median('log'):,.0f} | {singles.median('raw'):,.0f} | {ratio:.2f}x | "
          f"{cpu_ratio:.2f}x | | >= {TARGET}x: {_verdict(ratio)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: one round and few single appends")
    parser.add_argument("--rounds", type=int, default=11, help="rounds per batch size; figures are medians")
    parser.add_argument("--singles", type=int, default=3_000, help="single appends per side")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.singles = 1, 200

    with tempfile.TemporaryDirectory(prefix="eventsync-bench-append-") as folder:
        sides = Sides(Path(folder))
        try:
            batches = _measure_batches(sides, args.rounds, BATCH_SIZES)
            print("batches done", file=sys.stderr)
            singles = _measure_singles(sides, args.singles)
        finally:
            sides.close()
    _report(args, batches, singles)


if __name__ == "__main__":
    main()
