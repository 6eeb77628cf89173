"""Project-management timings: readiness with and without a dependency cycle, and rebuild cost per event.

Run: ``.venv/bin/python bench/bench_pm.py [--tasks 1000] [--runs 15]``

Part 1 (readiness) builds project ``chain``, N tasks each depending on the
previous one, and project ``ring``, the same plus one row that closes the
chain into a cycle. That row is written with sqlite3, as after a bad import.
It then times ``project_status`` and ``graph.readiness`` on both. The acyclic chain is the
baseline; the ratio shows what a stored cycle costs. It also times the small
X⇄Y store, against the 1 s limit a status call must meet.

Part 2 (replay) rebuilds the ``pm`` projection from a log of task events and
compares it with a do-nothing projection subscribed to the same types,
replayed by the same runner: the ratio is the projection's own work per event.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mcp_server.pm import graph
from mcp_server.pm.projection import PMProjection
from mcp_server.runtime import Runtime
from mcp_server.store.base import StoredEvent


class NoopProjection:
    """Baseline: subscribes to what the pm projection reads and does nothing."""

    name = "noop"
    version = 1
    subscriptions = PMProjection.subscriptions
    depends_on: tuple[str, ...] = ()

    def create(self, connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE IF NOT EXISTS noop (x INTEGER)")

    def drop(self, connection: sqlite3.Connection) -> None:
        connection.execute("DROP TABLE IF EXISTS noop")

    def prepare(self, event: StoredEvent) -> None:
        pass

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: None) -> list[dict[str, Any]]:
        return []


def _median_ms(function: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def _build_chain(runtime: Runtime, name: str, tasks: int) -> None:
    runtime.pm.create_project(name)
    previous = None
    for number in range(tasks):
        title = f"{name} step {number}"
        runtime.pm.add_task(name, title, depends_on=[previous] if previous else [])
        previous = title


def _readiness(root: str, tasks: int, runs: int) -> None:
    runtime = Runtime(root, environ={})
    started = time.perf_counter()
    _build_chain(runtime, "chain", tasks)
    build_seconds = time.perf_counter() - started
    _build_chain(runtime, "ring", tasks)
    _build_chain(runtime, "pair", 2)
    with runtime.log.transaction() as connection:
        connection.execute("INSERT INTO pm_dependencies VALUES ('ring-step-0', ?, '', 'import')",
                           (f"ring-step-{tasks - 1}",))
        connection.execute("INSERT INTO pm_dependencies VALUES ('pair-step-0', 'pair-step-1', '', 'import')")

    print(f"built {tasks} chained tasks by add_task in {build_seconds:.1f} s "
          f"({build_seconds / tasks * 1000:.1f} ms per command, bottleneck checks included)")
    print(f"{'query':<40} {'chain (baseline)':>16} {'ring (cycle)':>14} {'ratio':>7}")
    for label, function in (
        ("graph.readiness", lambda name: graph.readiness(runtime.log.connection, name)),
        ("PMService.project_status", lambda name: runtime.pm.project_status(name)),
    ):
        chain = _median_ms(lambda query=function: query("chain"), runs)
        ring = _median_ms(lambda query=function: query("ring"), runs)
        print(f"{label:<40} {chain:>13.2f} ms {ring:>11.2f} ms {ring / chain:>6.2f}×")
    pair = _median_ms(lambda: runtime.pm.project_status("pair"), runs)
    print(f"project_status on the X⇄Y store: {pair:.2f} ms (limit 1000 ms, {pair / 1000:.4f} of it)")
    runtime.close()


def _replay(root: str, tasks: int) -> None:
    runtime = Runtime(root, environ={})
    noop = NoopProjection()
    runtime.add_projection(noop)
    runtime.pm.create_project("work")
    for number in range(tasks):
        depends = [f"work-{number - 1}"] if number % 5 else []
        runtime.pm.add_task("work", f"work {number}", depends_on=depends, estimate=1 + number % 3)
        if number % 7 == 0:
            runtime.pm.assign_task(f"work-{number}", f"person {number % 4}")
    for number in range(0, tasks, 3):
        if runtime.pm.task_detail(f"work-{number}").task.ready:
            runtime.pm.complete_task(f"work-{number}")
    events = len(runtime.log.read_after(0, limit=100_000, types=PMProjection.subscriptions))

    timings = {}
    for name in ("noop", "pm"):
        started = time.perf_counter()
        runtime.rebuild(name)
        timings[name] = time.perf_counter() - started
    per_event = {name: seconds / events * 1000 for name, seconds in timings.items()}
    print(f"rebuild from {events} events: no-op projection {timings['noop']:.2f} s "
          f"({per_event['noop']:.3f} ms/event), pm {timings['pm']:.2f} s ({per_event['pm']:.3f} ms/event), "
          f"ratio {timings['pm'] / timings['noop']:.2f}×")
    runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per project (default 1000)")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per query (default 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        _readiness(first, args.tasks, args.runs)
        _replay(second, args.tasks)


if __name__ == "__main__":
    main()
