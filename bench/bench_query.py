"""Benchmark: latency of every query_events filter on a log of one million events.

The log comes from :mod:`million_log` (built once, in about three minutes
here, then reused from its cache). Each filter runs through
``SQLiteEventLog.query`` with the default page of 50, newest first unless
stated. The figure is the median of repeated runs after one warm-up run, so the
database pages are in the OS cache, as on a server that has been serving
queries for a while. The baseline, timed the same way in the same run, is a raw
``SELECT ... ORDER BY position DESC LIMIT 50`` on the same table through plain
``sqlite3``, without counting the total or decoding JSON. ``Runtime.query_events``
(what the MCP tool and the CLI call: it ingests the capture inbox first) is
timed on a copy of the log for a few filters. Target: every median under 5 ms.

Usage: python bench/bench_query.py [--quick] [--events N] [--runs R] [--no-runtime]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import million_log

from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter
from mcp_server.store.sqlite import SQLiteEventLog

TARGET_MS = 5.0
MAX_SECONDS_PER_QUERY = 4.0
"""Stop repeating a slow query after this long; its median still has at least three runs."""


@dataclass(frozen=True)
class Case:
    """One query to time: a filter and the page arguments."""

    label: str
    query: EventFilter = field(default_factory=EventFilter)
    cursor_page: int = 1
    descending: bool = True


def _timestamp_at(log: SQLiteEventLog, position: int) -> str:
    row = log.connection.execute("SELECT timestamp FROM events WHERE position >= ? ORDER BY position LIMIT 1",
                                 (position,)).fetchone()
    return str(row[0])


def _cases(log: SQLiteEventLog, facts: million_log.LogFacts) -> list[Case]:
    middle = facts.count // 2
    early = _timestamp_at(log, int(facts.count * 0.30))
    since = _timestamp_at(log, int(facts.count * 0.70))
    until = _timestamp_at(log, int(facts.count * 0.71))
    return [
        Case("no filter"),
        Case("type exact: file.saved", EventFilter(types=("file.saved",))),
        Case("type exact, rare: event.failed", EventFilter(types=("event.failed",))),
        Case("type pattern: touchpoint.*", EventFilter(types=("touchpoint.*",))),
        Case("type pattern: >", EventFilter(types=(">",))),
        Case("source: touchpoints", EventFilter(source="touchpoints")),
        Case("session_id (one of 8)", EventFilter(session_id=facts.sessions[1])),
        Case("correlation_id (one chain)", EventFilter(correlation_id=facts.sample_correlation_id)),
        Case("after position (middle)", EventFilter(after=middle)),
        Case("before position (middle)", EventFilter(before=middle)),
        Case("after and before (window of 1,000)", EventFilter(after=middle, before=middle + 1000)),
        Case("since time (last 30%)", EventFilter(since=since)),
        Case("until time (first 30%)", EventFilter(until=early)),
        Case("since and until (1% window)", EventFilter(since=since, until=until)),
        Case("payload path equality", EventFilter(payload_equals=(("path", facts.sample_path),))),
        Case("payload path + type file.saved",
             EventFilter(types=("file.saved",), payload_equals=(("path", facts.sample_path),))),
        Case("type + session_id", EventFilter(types=("file.saved",), session_id=facts.sessions[1])),
        Case("rare type + session_id", EventFilter(types=("event.failed",), session_id=facts.sessions[1])),
        Case("text: one common word", EventFilter(text="checkout")),
        Case("text: two words", EventFilter(text="checkout total")),
        Case("text: prefix check*", EventFilter(text="check*")),
        Case("text + type touchpoint.added", EventFilter(types=("touchpoint.added",), text="refund")),
        Case("text + session_id", EventFilter(text="checkout", session_id=facts.sessions[1])),
        Case("cursor page 2, no filter", cursor_page=2),
        Case("cursor page 100, no filter", cursor_page=100),
        Case("cursor page 2, type file.saved", EventFilter(types=("file.saved",)), cursor_page=2),
        Case("cursor page 100, type file.saved", EventFilter(types=("file.saved",)), cursor_page=100),
        Case("ascending, no filter", descending=False),
        Case("ascending, type touchpoint.*", EventFilter(types=("touchpoint.*",)), descending=False),
        Case("ascending, since time (last 30%)", EventFilter(since=since), descending=False),
    ]


def _cursor_for(log: SQLiteEventLog, case: Case) -> int | None:
    """Walk to the requested page and return the cursor that fetches it (untimed)."""
    cursor = None
    for _ in range(case.cursor_page - 1):
        page = log.query(case.query, cursor=cursor, descending=case.descending)
        if page.next_cursor is None:
            raise SystemExit(f"{case.label}: the log has fewer than {case.cursor_page} pages")
        cursor = page.next_cursor
    return cursor


def _median_ms(action: Callable[[], object], runs: int) -> tuple[float, float]:
    """Return the median and the slowest of up to ``runs`` timed calls, in milliseconds, after one warm-up."""
    action()
    timings: list[float] = []
    deadline = time.perf_counter() + MAX_SECONDS_PER_QUERY
    while len(timings) < runs and (len(timings) < 3 or time.perf_counter() < deadline):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), max(timings)


def _baseline_ms(path: Path, runs: int) -> float:
    connection = sqlite3.connect(str(path))
    try:
        sql = "SELECT position, id, type, timestamp, source, payload, metadata FROM events ORDER BY position DESC LIMIT 50"
        median, _ = _median_ms(lambda: connection.execute(sql).fetchall(), runs)
    finally:
        connection.close()
    return median


def _measure_log(facts: million_log.LogFacts, runs: int) -> list[tuple[Case, float, float, int, bool]]:
    log = SQLiteEventLog(str(facts.path))
    results = []
    try:
        for case in _cases(log, facts):
            cursor = _cursor_for(log, case)
            page = log.query(case.query, cursor=cursor, descending=case.descending)
            median, slowest = _median_ms(partial(log.query, case.query, cursor=cursor, descending=case.descending), runs)
            results.append((case, median, slowest, page.total, page.total_capped))
    finally:
        log.close()
    return results


def _measure_runtime(facts: million_log.LogFacts, runs: int) -> list[tuple[str, float]]:
    """Time ``Runtime.query_events`` for a few filters on a copy of the log in a scratch project."""
    cases = [("no filter", EventFilter()), ("type pattern: touchpoint.*", EventFilter(types=("touchpoint.*",))),
             ("payload path equality", EventFilter(payload_equals=(("path", facts.sample_path),)))]
    with tempfile.TemporaryDirectory(prefix="eventsync-bench-query-") as folder:
        data = Path(folder) / "data"
        data.mkdir()
        shutil.copyfile(facts.path, data / "events.db")
        runtime = Runtime(folder, environ={"EVENTSYNC_HOME": str(data)})
        try:
            return [(label, _median_ms(partial(runtime.query_events, query), runs)[0]) for label, query in cases]
        finally:
            runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on a log of 50,000 events")
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per filter")
    parser.add_argument("--no-runtime", action="store_true", help="skip Runtime.query_events (it copies the log)")
    args = parser.parse_args()
    if args.quick:
        args.events, args.runs = 50_000, 5

    facts = million_log.cached_log(args.events)
    size_mb = os.path.getsize(facts.path) / 1e6
    baseline = _baseline_ms(facts.path, args.runs)
    results = _measure_log(facts, args.runs)
    runtime_results = [] if args.no_runtime else _measure_runtime(facts, args.runs)
    print("measured", file=sys.stderr)

    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}; log of {facts.count:,} events, "
          f"{size_mb:,.0f} MB; median of up to {args.runs} runs after a warm-up")
    print(f"baseline: raw SELECT ... ORDER BY position DESC LIMIT 50: {baseline:.3f} ms")
    print(f"one-off: the first text query indexed the whole log in {facts.text_index_seconds:.1f} s, and the first "
          f"time-bounded query checked the order of its timestamps in {facts.time_order_seconds:.1f} s "
          "(both done while building the cache)\n")
    print("| filter | median ms | slowest ms | / baseline | total | < 5 ms |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    missed = 0
    for case, median, slowest, total, capped in results:
        verdict = "met" if median < TARGET_MS else "MISSED"
        missed += verdict == "MISSED"
        shown_total = f"{total:,}+" if capped else f"{total:,}"
        print(f"| {case.label} | {median:.2f} | {slowest:.2f} | {median / baseline:.1f}x | {shown_total} | {verdict} |")
    for label, median in runtime_results:
        verdict = "met" if median < TARGET_MS else "MISSED"
        missed += verdict == "MISSED"
        print(f"| Runtime.query_events, {label} | {median:.2f} | | {median / baseline:.1f}x | | {verdict} |")
    print(f"\n{missed} of {len(results) + len(runtime_results)} medians miss the {TARGET_MS:g} ms target")


if __name__ == "__main__":
    main()
