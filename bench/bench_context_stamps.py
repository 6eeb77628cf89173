"""Cost of checking file stamps on a context cache hit.

A cached ``get_context`` result now records the size and ``mtime_ns`` of its
files, and each hit stats them to catch edits made outside the hooks. This
times ``Runtime.get_context`` on a cached touchpoint with ``--files``
locations, with the stamp check (now) against a lookup that skips it (the
baseline, the lookup as it was before). The two run interleaved in one
process, ``--calls`` calls per round; the ratio is the median over rounds.

Run: ``.venv/bin/python bench/bench_context_stamps.py --files 5``
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import tempfile
import time
from typing import Any

from mcp_server.events import make_event
from mcp_server.modules import context
from mcp_server.runtime import Runtime


def lookup_without_stamps(connection: sqlite3.Connection, name: str, root: str) -> dict[str, Any] | None:
    row = connection.execute("SELECT body FROM context_cache WHERE name = ?", (name,)).fetchone()
    return json.loads(row[0]) if row else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5, help="locations of the touchpoint, one per file")
    parser.add_argument("--calls", type=int, default=300, help="cached get_context calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    arguments = parser.parse_args()

    root = tempfile.mkdtemp()
    os.makedirs(os.path.join(root, "src"))
    for index in range(arguments.files):
        with open(os.path.join(root, "src", f"m{index}.py"), "w", encoding="utf-8") as handle:
            handle.write("# @touchpoint shared\ndef f():\n    return 1\n")
    runtime = Runtime(root, environ={"CLAUDE_PROJECT_DIR": root})
    runtime.log.append(
        [make_event("file.saved", {"path": f"src/m{index}.py"}, source="bench") for index in range(arguments.files)]
    )
    runtime.get_context("shared")

    with_stamps = context.ContextCache.lookup
    ratios = []
    for round_number in range(arguments.rounds):
        timings = {}
        for label, lookup in (("baseline", lookup_without_stamps), ("now", with_stamps)):
            context.ContextCache.lookup = staticmethod(lookup)  # type: ignore[method-assign]
            start = time.perf_counter()
            for _ in range(arguments.calls):
                assert runtime.get_context("shared")["cached"]
            timings[label] = (time.perf_counter() - start) / arguments.calls * 1e6
        ratios.append(timings["now"] / timings["baseline"])
        print(f"round {round_number}: baseline {timings['baseline']:.0f} µs, now {timings['now']:.0f} µs per cached get_context")
    context.ContextCache.lookup = with_stamps  # type: ignore[method-assign]
    print(f"median ratio now/baseline: {statistics.median(ratios):.3f}")
    runtime.close()


if __name__ == "__main__":
    main()
