"""Benchmark: the team relay's publish throughput and its end-to-end latency between two machines.

Throughput: the relay publishes N events from a local SQLite log to a fresh
JetStream stream and waits for every acknowledgement before moving its outbox
checkpoint. The baseline publishes the same N messages (same subjects, bodies
and headers, encoded beforehand) with nats-py's ``publish_async`` and waits for
every acknowledgement. Rounds alternate between the two on fresh streams; the
figure is the median over rounds of relay rate / baseline rate, which cancels
load that other processes put on the machine during one round (target: at
least 0.7x). The relay's consumer also receives every event it published; the
rate that includes acknowledging those echoes is reported beside it.

Latency: machines A and B are two clones of one project, each with its own
log and a relay configured as ``eventsync relay`` runs it. Each run writes a
file on A, runs the real capture hook command from A's ``.claude/settings.json``
and polls B's log every millisecond until the ``file.saved`` event is there.
Reported: the median from the hook's start and from its exit (target: under
200 ms on loopback).

Usage: python bench/bench_relay.py [--events N] [--rounds R] [--latency-runs M] [--url nats://127.0.0.1:4222]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio
import git
import nats

from mcp_server.events import make_event
from mcp_server.install import init_project
from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter
from mcp_server.team import Relay, TeamSettings
from mcp_server.team.wire import encode_event


def _settings(url: str, machine: str, token: str) -> TeamSettings:
    return TeamSettings(servers=(url,), project="bench", machine_id=machine, stream=f"BENCH-{token}",
                        subject_prefix=f"bench{token}")


def _file_saved(index: int) -> dict:
    payload = {"path": f"src/module_{index % 500}.py", "tool": "Edit", "content_hash": f"sha256:{index:064x}",
               "size": 4096 + index % 97, "edits": 1, "lines_added": 3, "lines_removed": 1}
    return make_event("file.saved", payload, source="hook", session_id="bench-session")


async def _delete_stream(url: str, stream: str) -> None:
    connection = await nats.connect(url)
    try:
        await connection.jetstream().delete_stream(stream)
    finally:
        await connection.close()


# -- throughput ----------------------------------------------------------------------------


async def _raw_publish(url: str, settings: TeamSettings, messages: list[tuple[str, bytes, dict[str, str]]]) -> float:
    """Return the seconds nats-py's publish_async takes to publish ``messages`` and collect every ack."""
    connection = await nats.connect(url)
    js = connection.jetstream()
    await js.add_stream(settings.stream_config())
    try:
        start = time.perf_counter()
        futures = [await js.publish_async(subject, body, headers=dict(headers)) for subject, body, headers in messages]
        acks = await asyncio.gather(*futures)
        elapsed = time.perf_counter() - start
        assert len({ack.seq for ack in acks}) == len(messages)
        return elapsed
    finally:
        await js.delete_stream(settings.stream)
        await connection.close()


async def _relay_publish(url: str, settings: TeamSettings, runtime: Runtime, count: int) -> tuple[float, float]:
    """Return the seconds from connecting until every event is acknowledged, and until every echo is consumed.

    The relay's consumer receives every event it published; the second figure
    includes acknowledging those, which the relay defers while it publishes.
    """
    relay = Relay(runtime.log, settings)
    async with anyio.create_task_group() as group:
        await group.start(relay.run)
        while not relay.statistics.connected:
            await anyio.sleep(0.0005)
        start = time.perf_counter()
        while relay.statistics.published < count:
            await anyio.sleep(0.0005)
        published = time.perf_counter() - start
        while relay.statistics.echoes < count:
            await anyio.sleep(0.0005)
        drained = time.perf_counter() - start
        group.cancel_scope.cancel()
    await _delete_stream(url, settings.stream)
    return published, drained


async def _throughput(url: str, count: int, rounds: int, folder: Path) -> dict[str, float]:
    """Return medians of the baseline and relay rates (events per second) and of their per-round ratios."""
    runtime = Runtime(str(folder), environ={})
    runtime.log.append([_file_saved(index) for index in range(count)])
    events = list(runtime.log.iterate())
    raw_rates, relay_rates, drained_rates = [], [], []
    for round_number in range(rounds):
        token = uuid.uuid4().hex[:8]
        settings = _settings(url, "bench-a", token)
        messages = []
        for event in events:
            body, headers = encode_event(event.to_dict(), settings.machine_id)
            messages.append((settings.subject(event.type), body, headers))
        raw_rates.append(count / await _raw_publish(url, settings, messages))

        with runtime.log.transaction() as connection:
            runtime.log.set_checkpoint(connection, f"relay.outbox.BENCH-{token}r", 0)
        relay_settings = settings.with_changes(stream=f"BENCH-{token}r")
        published, drained = await _relay_publish(url, relay_settings, runtime, count)
        relay_rates.append(count / published)
        drained_rates.append(count / drained)
        print(f"  round {round_number + 1}: raw {raw_rates[-1]:,.0f}/s, relay {relay_rates[-1]:,.0f}/s, "
              f"relay with echoes {drained_rates[-1]:,.0f}/s", flush=True)
    runtime.close()
    return {
        "raw": statistics.median(raw_rates),
        "relay": statistics.median(relay_rates),
        "drained": statistics.median(drained_rates),
        "ratio": statistics.median(relay / raw for relay, raw in zip(relay_rates, raw_rates)),
        "drained_ratio": statistics.median(drained / raw for drained, raw in zip(drained_rates, raw_rates)),
    }


# -- latency -------------------------------------------------------------------------------


def _machines(folder: Path) -> tuple[Path, Path]:
    root_a = folder / "machine-a"
    root_a.mkdir()
    repository = git.Repo.init(root_a)
    (root_a / "README.md").write_text("bench\n")
    init_project(str(root_a))
    repository.index.add(["README.md"])
    repository.index.commit("Start")
    root_b = folder / "machine-b"
    git.Repo.clone_from(str(root_a), str(root_b))
    init_project(str(root_b))
    return root_a.resolve(), root_b.resolve()


def _hook(root: Path, relative: str, index: int) -> None:
    settings = json.loads((root / ".claude" / "settings.json").read_text())
    command = shlex.split(settings["hooks"]["PostToolUse"][-1]["hooks"][0]["command"])
    payload = json.dumps({"session_id": "bench", "hook_event_name": "PostToolUse", "tool_name": "Write",
                          "tool_input": {"file_path": str(root / relative)}, "tool_use_id": f"toolu_bench_{index}"})
    subprocess.run(command, input=payload.encode(), env={**os.environ, "CLAUDE_PROJECT_DIR": str(root)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


async def _latency(url: str, runs: int, folder: Path) -> tuple[list[float], list[float]]:
    """Return per-run seconds from hook start and from hook exit to the event in B's log."""
    root_a, root_b = _machines(folder)
    token = uuid.uuid4().hex[:8]
    runtime_a, runtime_b = Runtime(str(root_a), environ={}), Runtime(str(root_b), environ={})
    relay_a = Relay(runtime_a.log, _settings(url, "bench-a", token), prepare=runtime_a.catch_up)
    relay_b = Relay(runtime_b.log, _settings(url, "bench-b", token), prepare=runtime_b.catch_up)
    from_start, from_exit = [], []

    async with anyio.create_task_group() as group:
        await group.start(relay_a.run)
        await group.start(relay_b.run)
        while not (relay_a.statistics.connected and relay_b.statistics.connected):
            await anyio.sleep(0.01)

        for index in range(runs):
            relative = f"src/file_{index}.py"
            (root_a / relative).parent.mkdir(exist_ok=True)
            (root_a / relative).write_text(f"# @touchpoint bench-{index} Benchmark file\nVALUE = {index}\n")
            query = EventFilter(types=("file.saved",), payload_equals=(("path", relative),))

            started = time.perf_counter()
            await anyio.to_thread.run_sync(_hook, root_a, relative, index)
            hooked = time.perf_counter()
            while not (await anyio.to_thread.run_sync(runtime_b.log.query, query)).total:
                await anyio.sleep(0.001)
            arrived = time.perf_counter()
            from_start.append(arrived - started)
            from_exit.append(arrived - hooked)
            await anyio.sleep(0.05)
        group.cancel_scope.cancel()

    runtime_a.close()
    runtime_b.close()
    await _delete_stream(url, f"BENCH-{token}")
    return from_start, from_exit


async def _main(arguments: argparse.Namespace) -> None:
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"NATS at {arguments.url}")
    with tempfile.TemporaryDirectory() as folder:
        throughput_folder = Path(folder) / "throughput"
        throughput_folder.mkdir()
        print(f"throughput: {arguments.events:,} file.saved events, {arguments.rounds} rounds")
        rates = await _throughput(arguments.url, arguments.events, arguments.rounds, throughput_folder)
        print(f"  median raw publish_async:  {rates['raw']:,.0f} events/s")
        print(f"  median relay:              {rates['relay']:,.0f} events/s")
        print(f"  median relay with echoes:  {rates['drained']:,.0f} events/s")
        print(f"  relay / raw, median of rounds:             {rates['ratio']:.2f}x (target >= 0.70x)")
        print(f"  relay with echoes / raw, median of rounds: {rates['drained_ratio']:.2f}x")

        print(f"latency: {arguments.latency_runs} hooks on A, polled in B's log")
        from_start, from_exit = await _latency(arguments.url, arguments.latency_runs, Path(folder))
        print(f"  median from hook start: {statistics.median(from_start) * 1000:.1f} ms "
              f"(p90 {statistics.quantiles(from_start, n=10)[-1] * 1000:.1f} ms)")
        print(f"  median from hook exit:  {statistics.median(from_exit) * 1000:.1f} ms "
              f"(p90 {statistics.quantiles(from_exit, n=10)[-1] * 1000:.1f} ms; target < 200 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per throughput round (default 20000)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating throughput rounds (default 7)")
    parser.add_argument("--latency-runs", type=int, default=40, help="hooks timed end to end (default 40)")
    parser.add_argument("--url", default="nats://127.0.0.1:4222", help="NATS server (default nats://127.0.0.1:4222)")
    arguments = parser.parse_args()
    if not arguments.url.startswith("nats://127.0.0.1"):
        sys.exit("bench_relay.py: use a NATS server on loopback (nats://127.0.0.1:PORT)")
    asyncio.run(_main(arguments))


if __name__ == "__main__":
    main()
