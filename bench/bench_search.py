"""Benchmark: ``search_touchpoints`` over 50,000 touchpoints.

Builds a project of generated Python files (20 touchpoints each) and indexes it
through the projections, as ``eventsync index`` does. Then it times
``Runtime.search_touchpoints``, the call behind the MCP tool (catch-up, hit
count check, FTS5 query with bm25 weights, snippets), against two baselines in
the same run: a raw ``MATCH`` on the same FTS5 table ordered by the default
rank, and the full ranking (every hit scored, as the tool did before it bounded
the work for queries with many hits). It also prints how many of the tool's
hits the full ranking returns too.

Queries fall into classes by hit count. Medians are reported per query, per
class and over a mix in which each class has the weight of :data:`MIX`. The
weights are an assumption that agents mostly search for words of one feature. Timings of the three
calls are interleaved, query by query. Target: median < 10 ms.

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

from mcp_server.modules.search import _rank_all
from mcp_server.runtime import Runtime
from mcp_server.store.sqlite import fts_query

PER_FILE = 20
CLASSES = {
    "none (0 hits)": ("zzz-missing",),
    "few (< 500 hits)": ("module_1234", "refund coupon stock", "payment retry webhook", "address-order", "pkg3 cart"),
    "some (500-2,000)": ("invoice refund", "webhook tax", "queue email", "token session", "pkg12"),
    "many (2,000-10,000)": ("cart", "ship", "tax", "checkout", "module_12"),
    "all rows (50,000)": ("handling", "src"),
}
"""Query classes by hit count on the generated project with 50,000 touchpoints."""

MIX = {"none (0 hits)": 0.05, "few (< 500 hits)": 0.4, "some (500-2,000)": 0.3, "many (2,000-10,000)": 0.2,
       "all rows (50,000)": 0.05}
"""Share of each class in the query mix."""
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


def _timed_ms(function: object) -> float:
    started = time.perf_counter()
    function()  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


def _weighted_median(samples: list[tuple[float, float]]) -> float:
    """Return the median of ``(value, weight)`` samples."""
    ordered = sorted(samples)
    half = sum(weight for _, weight in ordered) / 2
    seen = 0.0
    for value, weight in ordered:
        seen += weight
        if seen >= half:
            return value
    return ordered[-1][0]


def _time_queries(runtime: Runtime, runs: int) -> dict[str, dict[str, list[float]]]:
    """Return per query the timings of the tool, the full ranking and the raw MATCH, interleaved."""
    connection = runtime.log.connection
    timings: dict[str, dict[str, list[float]]] = {}
    queries = [text for texts in CLASSES.values() for text in texts]
    for run in range(runs):
        for text in queries:
            query = fts_query(text)
            calls = {
                "tool": lambda: runtime.search_touchpoints(text, limit=20),  # noqa: B023
                "full": lambda: _rank_all(connection, query, 20),  # noqa: B023
                "raw": lambda: connection.execute(  # noqa: B023
                    "SELECT name, path, line FROM touchpoint_search WHERE touchpoint_search MATCH ? "
                    "ORDER BY rank LIMIT 20", (query,)).fetchall(),
            }
            timing = timings.setdefault(text, {kind: [] for kind in calls})
            # The first call of a query reads its pages into SQLite's cache for the others, so the
            # order rotates from run to run.
            kinds = list(calls)
            for kind in kinds[run % 3:] + kinds[:run % 3]:
                timing[kind].append(_timed_ms(calls[kind]))
    return timings


def _report(runtime: Runtime, timings: dict[str, dict[str, list[float]]]) -> None:
    connection = runtime.log.connection
    print(f"{'query':<24} {'hits':>6} {'tool':>9} {'full rank':>10} {'raw MATCH':>10} {'tool/raw':>8} "
          f"{'same as full':>12}")
    pooled: dict[str, list[tuple[float, float]]] = {"tool": [], "full": [], "raw": []}
    for label, texts in CLASSES.items():
        for text in texts:
            query = fts_query(text)
            hits = connection.execute(
                "SELECT count(*) FROM touchpoint_search WHERE touchpoint_search MATCH ?", (query,)
            ).fetchone()[0]
            tool_hits = runtime.search_touchpoints(text, limit=20)
            full_hits = _rank_all(connection, query, 20)
            shared = len(set(tool_hits) & set(full_hits))
            same = "identical" if tool_hits == full_hits else f"{shared}/{len(full_hits)}"
            medians = {kind: statistics.median(values) for kind, values in timings[text].items()}
            print(f"{text!r:<24} {hits:>6} {medians['tool']:>6.2f} ms {medians['full']:>7.2f} ms "
                  f"{medians['raw']:>7.2f} ms {medians['tool'] / medians['raw']:>7.1f}x {same:>12}")
            weight = MIX[label] / len(texts) / len(timings[text]["tool"])
            for kind, values in timings[text].items():
                pooled[kind] += [(value, weight) for value in values]

    print(f"\n{'class (mix weight)':<30} {'tool':>9} {'full rank':>10} {'raw MATCH':>10}")
    for label, texts in CLASSES.items():
        medians = {kind: statistics.median([v for text in texts for v in timings[text][kind]])
                   for kind in ("tool", "full", "raw")}
        print(f"{label + f' ({MIX[label]:.0%})':<30} {medians['tool']:>6.2f} ms {medians['full']:>7.2f} ms "
              f"{medians['raw']:>7.2f} ms")
    mix = {kind: _weighted_median(samples) for kind, samples in pooled.items()}
    print(f"{'mix, weighted median':<30} {mix['tool']:>6.2f} ms {mix['full']:>7.2f} ms {mix['raw']:>7.2f} ms"
          "  (target: tool < 10 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--touchpoints", type=int, default=50_000, help="touchpoints to index")
    parser.add_argument("--runs", type=int, default=50, help="timed runs per query and call")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")

    root = tempfile.mkdtemp(prefix="eventsync-bench-search-")
    try:
        _write_project(root, args.touchpoints, random.Random(7))
        runtime = Runtime(root, environ={"EVENTSYNC_HOME": os.path.join(root, ".data")})
        try:
            started = time.perf_counter()
            report = runtime.index_project()
            rows = runtime.log.connection.execute("SELECT count(*) FROM touchpoint_search").fetchone()[0]
            print(f"indexed {report.files} files, {rows} touchpoints in {time.perf_counter() - started:.1f} s")
            _report(runtime, _time_queries(runtime, args.runs))
        finally:
            runtime.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
