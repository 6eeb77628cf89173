"""Benchmark: ``search_touchpoints`` over 50,000 touchpoints.

Builds a project of generated Python files (20 touchpoints each) and indexes it
through the projections, as ``eventsync index`` does. Then it times
``Runtime.search_touchpoints``, the call behind the MCP tool (catch-up, FTS5
query with bm25 weights, snippets), against a raw ``MATCH`` on the same FTS5
table ordered by the default rank, for queries that match few, some and many
rows. Target: median < 10 ms.

Usage: python bench/bench_search.py [--touchpoints N] [--runs R]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import tempfile
import time

from mcp_server.runtime import Runtime
from mcp_server.store.sqlite import fts_query

PER_FILE = 20
QUERIES = ("cart", "invoice refund", "ship", "payment retry webhook", "zzz-missing", "tax", "handling")
_WORDS = (
    "cart invoice refund shipping payment retry webhook tax order customer address coupon stock "
    "warehouse label price discount checkout session token audit export report email queue"
).split()


def _write_project(root: str, touchpoints: int, rng: random.Random) -> None:
    for number in range(touchpoints // PER_FILE):
        folder = os.path.join(root, "src", f"pkg{number // 100}")
        os.makedirs(folder, exist_ok=True)
        lines: list[str] = []
        for block in range(PER_FILE):
            words = rng.sample(_WORDS, 4)
            lines.append(f"# @touchpoint {words[0]}-{words[1]}-{number}-{block} {' '.join(words)} handling")
            lines.append(f"def handle_{block}(request):")
            lines.append(f"    return request.get({block!r})")
            lines.append("")
        with open(os.path.join(folder, f"module_{number}.py"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines))


def _median_ms(function: object, runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        function()  # type: ignore[operator]
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touchpoints", type=int, default=50_000, help="touchpoints to index")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per query")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")

    root = tempfile.mkdtemp(prefix="eventsync-bench-search-")
    try:
        _write_project(root, args.touchpoints, random.Random(7))
        runtime = Runtime(root, environ={"EVENTSYNC_HOME": os.path.join(root, ".data")})
        try:
            started = time.perf_counter()
            report = runtime.index_project()
            connection = runtime.log.connection
            rows = connection.execute("SELECT count(*) FROM touchpoint_search").fetchone()[0]
            print(f"indexed {report.files} files, {rows} touchpoints in {time.perf_counter() - started:.1f} s")
            print(f"{'query':<24} {'hits':>6} {'search_touchpoints':>19} {'raw MATCH':>10} {'ratio':>6}")
            for text in QUERIES:
                query = fts_query(text)
                matching = connection.execute(
                    "SELECT count(*) FROM touchpoint_search WHERE touchpoint_search MATCH ?", (query,)
                ).fetchone()[0]
                tool = _median_ms(lambda: runtime.search_touchpoints(text, limit=20), args.runs)
                raw = _median_ms(lambda: connection.execute(
                    "SELECT name, path, line FROM touchpoint_search WHERE touchpoint_search MATCH ? "
                    "ORDER BY rank LIMIT 20", (query,)).fetchall(), args.runs)
                print(f"{text!r:<24} {matching:>6} {tool:>16.3f} ms {raw:>7.3f} ms {tool / raw:>5.1f}x")
        finally:
            runtime.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
