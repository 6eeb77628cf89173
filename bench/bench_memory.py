"""Benchmark: resident memory of a running ``eventsync serve`` on a log of one million events.

Three servers run in turn, each on a scratch git project, driven over stdio by
the MCP SDK client in legacy mode as Claude Code drives it:

* **empty**: a project with no log yet; the baseline for the ratio.
* **1M, modules current**: the project's ``.eventsync/events.db`` is a copy of
  the million-event log from :mod:`million_log` whose modules (touchpoint
  index, search, context and the rest) have already caught up, as in a
  project that has run eventsync all along. The first run builds that copy
  once, which takes minutes.
* **1M, catching up**: a copy of the same log with no module state, so the
  server replays the whole log into every module. Memory is sampled for
  ``--catch-up-seconds``; the replay rate gives the time a full catch-up takes.

For the first two, memory is read once the server reports no module lag, has
run ``query_events``, ``list_touchpoints`` and ``log_stats``, and has idled a
few seconds so its tailer has run several rounds. The figures are VmRSS
(resident now) and VmHWM (the peak) from ``/proc/<pid>/status``. Target:
VmRSS under 150 MB with a million events.

Usage: python bench/bench_memory.py [--quick] [--catch-up-seconds S]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import git
import million_log
from mcp import Client
from mcp.client.stdio import StdioServerParameters

TARGET_MB = 150.0
SETTLE_SECONDS = 3.0
"""Idle time after the last tool call before memory is read; the tailer runs every 0.1 s."""

CAUGHT_UP_TIMEOUT = 300.0


@dataclass
class Reading:
    """Memory of one server, in megabytes, and how long it took to be ready."""

    label: str
    rss_mb: float
    peak_mb: float
    ready_seconds: float
    notes: list[str] = field(default_factory=list)


def _status_mb(pid: int) -> dict[str, float]:
    """Return VmRSS and VmHWM of ``pid`` in megabytes (10^6 bytes)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024 / 1e6
    return values


def _server_pid() -> int:
    """Return the pid of the one ``serve`` child of this process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"serve" in command:
            return int(entry.name)
    raise SystemExit("could not find the eventsync serve process among this process's children")


def _project(folder: Path, log: Path | None) -> Path:
    root = folder / "project"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("# @touchpoint app-main Entry point\nprint('hello')\n")
    git.Repo.init(root).close()
    if log is not None:
        (root / ".eventsync").mkdir()
        shutil.copyfile(log, root / ".eventsync" / "events.db")
    return root


def _parameters(root: Path) -> StdioServerParameters:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EVENTSYNC_")}
    environment["CLAUDE_PROJECT_DIR"] = str(root)
    command = Path(sys.executable).with_name("eventsync")
    return StdioServerParameters(command=str(command), args=["serve", "--project", str(root)], env=environment,
                                 cwd=str(root))


async def _call(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments or {})
    if result.is_error or result.structured_content is None:
        raise SystemExit(f"tool {tool} failed: {result.content}")
    return result.structured_content


async def _settled_reading(label: str, root: Path) -> Reading:
    """Start a server on ``root``, wait until its modules have no lag, exercise it, and read its memory."""
    started = time.perf_counter()
    async with Client(_parameters(root), mode="legacy") as client:
        pid = _server_pid()
        with anyio.fail_after(CAUGHT_UP_TIMEOUT):
            while True:
                stats = await _call(client, "log_stats")
                if all(consumer["lag"] == 0 for consumer in stats["consumers"]):
                    break
                await anyio.sleep(0.5)
        ready = time.perf_counter() - started
        await _call(client, "query_events", {"type": "file.saved", "limit": 50})
        await _call(client, "query_events", {"text": "checkout", "limit": 50})
        await _call(client, "list_touchpoints", {"limit": 200})
        await _call(client, "log_stats")
        await anyio.sleep(SETTLE_SECONDS)
        memory = _status_mb(pid)
    return Reading(label, memory["VmRSS"], memory["VmHWM"], ready,
                   [f"head {stats['head']:,}", f"{len(stats['consumers'])} modules"])


def _checkpoints(database: Path) -> tuple[int, dict[str, int]]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        head = int(connection.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])
        try:
            rows = connection.execute("SELECT consumer, position FROM checkpoints").fetchall()
        except sqlite3.OperationalError:
            rows = []
    finally:
        connection.close()
    return head, {str(name): int(position) for name, position in rows}


async def _catch_up_reading(label: str, root: Path, seconds: float) -> Reading:
    """Sample a server's memory for ``seconds`` while it replays the log into empty modules."""
    database = root / ".eventsync" / "events.db"
    peak_rss = 0.0
    async with Client(_parameters(root), mode="legacy") as client:
        pid = _server_pid()
        await _call(client, "log_stats")
        started = time.perf_counter()
        _, before = _checkpoints(database)
        while time.perf_counter() - started < seconds:
            await anyio.sleep(1.0)
            peak_rss = max(peak_rss, _status_mb(pid)["VmRSS"])
        elapsed = time.perf_counter() - started
        head, after = _checkpoints(database)
        memory = _status_mb(pid)
    progress = sum(after.get(name, 0) - before.get(name, 0) for name in after)
    remaining = sum(head - position for position in after.values())
    notes = [f"modules advanced {progress:,} positions in {elapsed:.0f} s ({progress / elapsed:,.0f}/s)"]
    if remaining:
        notes.append(f"{remaining:,} positions left over {len(after)} modules, about "
                     f"{remaining / max(progress / elapsed, 1) / 60:.0f} min more at that rate")
    return Reading(label, memory["VmRSS"], max(memory["VmHWM"], peak_rss), elapsed, notes)


def _in_project(log: Path | None, action: Callable[[Path], Any]) -> Reading:
    with tempfile.TemporaryDirectory(prefix="eventsync-bench-memory-") as folder:
        root = _project(Path(folder), log)
        return anyio.run(action, root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on a log of 50,000 events")
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the large log")
    parser.add_argument("--catch-up-seconds", type=float, default=60.0,
                        help="seconds to sample memory while a server replays the log; 0 skips it")
    args = parser.parse_args()
    if args.quick:
        args.events, args.catch_up_seconds = 50_000, 10.0

    facts = million_log.cached_log(args.events)
    projected = million_log.projected_log(args.events)

    readings = [
        _in_project(None, lambda root: _settled_reading("empty log", root)),
        _in_project(projected, lambda root: _settled_reading(f"{args.events:,} events, modules current", root)),
    ]
    if args.catch_up_seconds > 0:
        label = f"{args.events:,} events, modules catching up"
        readings.append(_in_project(facts.path, lambda root: _catch_up_reading(label, root, args.catch_up_seconds)))

    baseline = readings[0].rss_mb
    print(f"python {platform.python_version()}, {platform.machine()}; log of {args.events:,} events "
          f"({os.path.getsize(projected) / 1e6:,.0f} MB with module state)\n")
    print("| server | VmRSS MB | VmHWM MB | VmRSS / empty | ready after s | notes |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for reading in readings:
        print(f"| {reading.label} | {reading.rss_mb:.1f} | {reading.peak_mb:.1f} | {reading.rss_mb / baseline:.2f}x | "
              f"{reading.ready_seconds:.1f} | {'; '.join(reading.notes)} |")
    large = readings[1].rss_mb
    print(f"\ntarget: VmRSS with {args.events:,} events < {TARGET_MB:g} MB: {large:.1f} MB "
          f"({'met' if large < TARGET_MB else 'MISSED'})")


if __name__ == "__main__":
    main()
