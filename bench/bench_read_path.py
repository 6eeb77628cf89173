"""Cost of the read path's guard against a held write lock, and of opening a runtime.

On a project with ``--files`` annotated files, indexed and caught up:

* a read's preparation: ``Runtime.prepare_read`` (catch up with the write lock
  wait shortened for this thread) against ``Runtime.catch_up`` alone (the baseline);
* ``Runtime.list_touchpoints`` end to end, which now runs ``prepare_read``;
* the version check of each projection when a runtime opens: read first, as
  ``ConsumerRunner.ensure`` now does, against a write transaction per
  projection, as it did before (the baseline);
* with another process holding the write lock and one event in the inbox:
  how long ``list_touchpoints`` takes to return what the log last committed.

Each pair runs interleaved in one process; the figures are medians.

Run: ``.venv/bin/python bench/bench_read_path.py --files 200``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import git

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcp_server.install import init_project  # noqa: E402
from mcp_server.runtime import Runtime  # noqa: E402

LOCK_HOLDER = (
    "import sqlite3, sys\n"
    "connection = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "connection.execute('BEGIN IMMEDIATE')\n"
    "print('locked', flush=True)\n"
    "sys.stdin.readline()\n"
)


def _interleaved_ms(first: Callable[[], object], second: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Return the median milliseconds of ``first`` and ``second``, timed alternately."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for function, bucket in ((first, samples[0]), (second, samples[1])):
            start = time.perf_counter()
            function()
            bucket.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples[0]), statistics.median(samples[1])


def _project(root: str, files: int) -> None:
    git.Repo.init(root).close()
    init_project(root)
    for number in range(files):
        with open(os.path.join(root, f"m{number:04d}.py"), "w", encoding="utf-8") as handle:
            handle.write(f"# @touchpoint mark-{number}\nvalue = {number}\n")


def _old_version_checks(runtime: Runtime) -> None:
    for projection in runtime.projections:
        with runtime.log.transaction() as connection:
            runtime.log.projection_version(connection, projection.name)


def _new_version_checks(runtime: Runtime) -> None:
    for projection in runtime.projections:
        runtime.runner.ensure(projection)


def _read_under_lock(root: str, runtime: Runtime) -> tuple[float, str | None]:
    database = os.path.join(runtime.data_dir, "events.db")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, database], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        payload = {"session_id": "s-bench", "hook_event_name": "PostToolUse", "tool_name": "Write",
                   "tool_input": {"file_path": os.path.join(root, "m0000.py")}, "tool_use_id": "toolu_bench"}
        subprocess.run([sys.executable, "-m", "mcp_server", "hook"], input=json.dumps(payload), text=True,
                       env={**os.environ, "CLAUDE_PROJECT_DIR": root}, cwd=root, check=True, capture_output=True)
        start = time.perf_counter()
        runtime.list_touchpoints(limit=1)
        return (time.perf_counter() - start) * 1000, runtime.read_note()
    finally:
        holder.communicate("\n", timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200, help="annotated files in the project (default 200)")
    parser.add_argument("--repeat", type=int, default=200, help="timed runs per measurement (default 200)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = os.path.realpath(folder)
        _project(root, args.files)
        runtime = Runtime(root, environ={})
        runtime.index_project()

        catch_up, prepare = _interleaved_ms(runtime.catch_up, runtime.prepare_read, args.repeat)
        print(f"catch_up (baseline)        {catch_up * 1000:8.1f} µs")
        print(f"prepare_read               {prepare * 1000:8.1f} µs  ratio {prepare / catch_up:.2f}")

        listing, _ = _interleaved_ms(lambda: runtime.list_touchpoints(limit=50), runtime.catch_up, args.repeat)
        print(f"list_touchpoints(limit=50) {listing * 1000:8.1f} µs")

        old, new = _interleaved_ms(lambda: _old_version_checks(runtime), lambda: _new_version_checks(runtime),
                                   args.repeat)
        print(f"version checks, {len(runtime.projections)} projections: write transactions (baseline) "
              f"{old * 1000:.1f} µs, reads {new * 1000:.1f} µs  ratio {new / old:.2f}")

        waited, note = _read_under_lock(root, runtime)
        print(f"list_touchpoints with the write lock held elsewhere: answered in {waited:.0f} ms")
        print(f"  note: {note}")
        runtime.close()


if __name__ == "__main__":
    main()
