"""Benchmark: what the durable consumers' time limit costs per event during catch-up.

Three copies of one log, each with the same projection, are caught up in
turns, in reversed order every other round:

* **no limit** (the baseline): ``handler_timeout=0``, ``prepare`` and ``apply`` called directly;
* **limit, prepare in a thread**: the default limit, ``prepare`` in a worker
  thread and an SQLite progress handler around ``apply``;
* **limit, prepare inline**: the default limit for a projection that sets
  ``prepare_inline``, so only ``apply`` gets the progress handler.

The projection does what the built-in ones do per event: a trivial
``prepare`` and one upsert in ``apply``. So the figures are the limit's fixed
cost against the cheapest handler; a handler doing real work hides more of it.

Usage: python bench/bench_consumer_limit.py [--rounds R] [--events N]
"""

from __future__ import annotations

import argparse
import platform
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from mcp_server.consumers import DEFAULT_HANDLER_TIMEOUT, ConsumerRunner
from mcp_server.events import make_event
from mcp_server.store.base import StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog


class LastSeen:
    """Keeps the last position seen per path, like a small index projection."""

    name = "last_seen"
    version = 1
    subscriptions = ("file.saved",)
    depends_on: tuple[str, ...] = ()

    def create(self, connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE IF NOT EXISTS last_seen (path TEXT PRIMARY KEY, position INTEGER)")

    def drop(self, connection: sqlite3.Connection) -> None:
        connection.execute("DROP TABLE IF EXISTS last_seen")

    def __init__(self, prepare_inline: bool) -> None:
        self.prepare_inline = prepare_inline

    def prepare(self, event: StoredEvent) -> Any:
        return event.payload.get("path")

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: Any) -> list[dict[str, Any]]:
        connection.execute(
            "INSERT INTO last_seen VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET position = excluded.position",
            (prepared, event.position),
        )
        return []


def _append(log: SQLiteEventLog, count: int, offset: int) -> None:
    log.append(
        make_event("file.saved", {"path": f"src/module_{index % 500}.py", "tool": "Edit"}, source="bench")
        for index in range(offset, offset + count)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds per side; figures are medians")
    parser.add_argument("--events", type=int, default=1_000, help="events caught up per round and side")
    args = parser.parse_args()

    setups = {
        "no limit": (0.0, False),
        "limit, prepare in a thread": (DEFAULT_HANDLER_TIMEOUT, False),
        "limit, prepare inline": (DEFAULT_HANDLER_TIMEOUT, True),
    }
    rates: dict[str, list[float]] = {label: [] for label in setups}
    with tempfile.TemporaryDirectory(prefix="eventsync-bench-consumers-") as folder:
        sides = {}
        for index, (label, (timeout, inline)) in enumerate(setups.items()):
            log = SQLiteEventLog(str(Path(folder) / f"side-{index}.db"))
            runner = ConsumerRunner(log, handler_timeout=timeout)
            projection = LastSeen(inline)
            runner.ensure(projection)
            sides[label] = (log, runner, projection)
        try:
            for round_index in range(args.rounds):
                order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
                for label in order:
                    log, runner, projection = sides[label]
                    _append(log, args.events, round_index * args.events)
                    started = time.perf_counter()
                    handled = runner.catch_up(projection)
                    elapsed = time.perf_counter() - started
                    if handled != args.events:
                        raise SystemExit(f"{label}: handled {handled} of {args.events} events; the figure would be wrong")
                    rates[label].append(handled / elapsed)
        finally:
            for log, runner, _ in sides.values():
                runner.release()
                log.close()

    baseline = statistics.median(rates["no limit"])
    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, {platform.machine()}")
    print(f"median of {args.rounds} rounds of {args.events:,} events per side; limit {DEFAULT_HANDLER_TIMEOUT:g} s\n")
    print("| catch-up | events/s | µs per event | / no limit | cost per event |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, samples in rates.items():
        rate = statistics.median(samples)
        print(f"| {label} | {rate:,.0f} | {1e6 / rate:.0f} | {rate / baseline:.2f}x | "
              f"{1e6 / rate - 1e6 / baseline:.1f} µs |")


if __name__ == "__main__":
    main()
