"""Benchmark: eventsync's bus delivering events to three async handlers, against blinker and bubus.

Every bus gets the same three coroutine handlers, each of which increments its
own counter. The clock stops only when every handler has handled every event:
eventsync returns from ``await bus.wait_idle()``, bubus from ``await
bus.wait_until_idle()``, and blinker's ``send_async`` awaits its receivers
before it returns. All three run on asyncio. Two things are timed:

* **dispatch**: the events already exist before the clock starts. For
  eventsync they are stored in the log, and the bus reads them back (turning
  rows into events on SQLite) and delivers them. For blinker and bubus they
  are already built objects. This is the bus machinery alone, and the figure the targets
  apply to (at least 1.5x blinker, at least 100x bubus, on ``MemoryEventLog``).
* **publish**: the clock also covers building and publishing each event, one
  call per event: eventsync ``await bus.publish(type, payload)`` (builds the
  event, validates it, appends it to the log, one transaction per event on
  SQLite, and dispatches it); blinker ``make_event`` plus ``send_async``; bubus
  constructing the event model plus ``dispatch``.
* **burst** (eventsync only, compared with the other buses' publish figures):
  ``publish_nowait`` for every event, then one ``wait_idle``, so the bus
  dispatches the whole burst in batches.

bubus is a few hundred times slower than the others, so it gets fewer events
per round. Every figure is a rate (events per second), so the counts need not
match. bubus runs with its default settings, under which it rejects a dispatch
while 100 events are pending. It therefore receives windows of 50 events, and
the clock includes its ``wait_until_idle`` after each window, which is how a
producer has to feed it. (Without a history limit it accepts a whole burst,
but then it slows down as its history grows: about 140 events/s at 300.)

Each figure is the median of several rounds, and the buses take turns within
a round.

Usage: python bench/bench_bus.py [--quick] [--events N] [--rounds R] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import platform
import pstats
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import blinker
import bubus

from mcp_server.bus import EventBus
from mcp_server.events import make_event
from mcp_server.store.base import EventLog, StoredEvent
from mcp_server.store.memory import MemoryEventLog
from mcp_server.store.sqlite import SQLiteEventLog

EVENT_TYPE = "file.saved"
HANDLERS = 3
APPEND_BATCH = 500
"""Events per append when filling a log before a dispatch round, the bus's own read batch size."""

MODES = ("dispatch", "publish", "burst")
BLINKER_TARGET = 1.5
BUBUS_TARGET = 100.0
BUBUS_WINDOW = 50
"""Events dispatched to bubus before waiting for it to go idle; its default limit is 100 pending events."""


def _payload(index: int) -> dict[str, object]:
    return {"path": f"src/module_{index % 500}.py", "tool": "Edit", "size": 1200 + index % 97}


def _events(count: int) -> list[dict[str, object]]:
    return [make_event(EVENT_TYPE, _payload(index), source="bench") for index in range(count)]


class FileSaved(bubus.BaseEvent[None]):
    """The bubus form of the benchmark's event."""

    path: str
    tool: str
    size: int


# -- eventsync -----------------------------------------------------------------------------


async def _eventsync_round(log: EventLog, count: int, *, mode: str, profiler: cProfile.Profile | None = None) -> float:
    """Return seconds for ``count`` events to reach all three handlers through eventsync's bus.

    ``profiler``, when given, runs only while the clock does.
    """
    counters = [0] * HANDLERS
    bus = EventBus(log, source="bench")  # type: ignore[arg-type]
    for slot in range(HANDLERS):
        bus.subscribe(EVENT_TYPE, _counting_handler(counters, slot), name=f"handler-{slot}")

    if mode == "dispatch":
        events = _events(count)
        for start in range(0, count, APPEND_BATCH):
            log.append(events[start : start + APPEND_BATCH])

    async with anyio.create_task_group() as group:
        await group.start(bus.run)
        if profiler is not None:
            profiler.enable()
        started = time.perf_counter()
        if mode == "publish":
            for index in range(count):
                await bus.publish(EVENT_TYPE, _payload(index))
        elif mode == "burst":
            for index in range(count):
                bus.publish_nowait(EVENT_TYPE, _payload(index))
        await bus.wait_idle()
        elapsed = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
        group.cancel_scope.cancel()

    _check_counters("eventsync", counters, count)
    return elapsed


def _counting_handler(counters: list[int], slot: int) -> Callable[[StoredEvent], Awaitable[None]]:
    async def handle(event: StoredEvent) -> None:
        counters[slot] += 1

    handle.__qualname__ = f"handler_{slot}"
    return handle


def _check_counters(bus_name: str, counters: list[int], count: int) -> None:
    if counters != [count] * HANDLERS:
        raise SystemExit(f"{bus_name}: handlers saw {counters}, expected {count} each; the figure would be wrong")


# -- blinker -------------------------------------------------------------------------------


async def _blinker_round(count: int, *, publish: bool) -> float:
    """Return seconds for ``count`` events to reach all three receivers through ``Signal.send_async``."""
    counters = [0] * HANDLERS
    signal = blinker.Signal()
    receivers = [_blinker_receiver(counters, slot) for slot in range(HANDLERS)]
    for receiver in receivers:
        signal.connect(receiver)

    if publish:
        started = time.perf_counter()
        for index in range(count):
            await signal.send_async(make_event(EVENT_TYPE, _payload(index), source="bench"))
        elapsed = time.perf_counter() - started
    else:
        events = _stored_events(count)
        started = time.perf_counter()
        for event in events:
            await signal.send_async(event)
        elapsed = time.perf_counter() - started

    _check_counters("blinker", counters, count)
    return elapsed


def _blinker_receiver(counters: list[int], slot: int) -> Callable[[object], Awaitable[None]]:
    async def receive(sender: object) -> None:
        counters[slot] += 1

    return receive


def _stored_events(count: int) -> list[StoredEvent]:
    """Return the same events eventsync's dispatch round delivers, as the objects its handlers receive."""
    log = MemoryEventLog()
    return log.append(_events(count))


# -- bubus ---------------------------------------------------------------------------------


async def _bubus_round(count: int, *, publish: bool) -> float:
    """Return seconds for ``count`` events to reach all three handlers through bubus's EventBus.

    bubus rejects a dispatch while 100 events are pending, so events go in
    windows of :data:`BUBUS_WINDOW`, each awaited with ``wait_until_idle``.
    """
    counters = [0] * HANDLERS
    bus = bubus.EventBus(name=f"bench_{time.perf_counter_ns()}")
    for slot in range(HANDLERS):
        bus.on(FileSaved, _bubus_handler(counters, slot))

    prebuilt = [] if publish else [FileSaved(**_payload(index)) for index in range(count)]  # type: ignore[arg-type]
    try:
        started = time.perf_counter()
        for window in range(0, count, BUBUS_WINDOW):
            for index in range(window, min(count, window + BUBUS_WINDOW)):
                bus.dispatch(FileSaved(**_payload(index)) if publish else prebuilt[index])  # type: ignore[arg-type]
            await bus.wait_until_idle()
        elapsed = time.perf_counter() - started
    finally:
        await bus.stop(clear=True)

    _check_counters("bubus", counters, count)
    return elapsed


def _bubus_handler(counters: list[int], slot: int) -> Callable[[FileSaved], Awaitable[None]]:
    async def handle(event: FileSaved) -> None:
        counters[slot] += 1

    handle.__name__ = handle.__qualname__ = f"bubus_handler_{slot}"
    return handle


# -- driver --------------------------------------------------------------------------------


def _sqlite_log(folder: Path) -> SQLiteEventLog:
    return SQLiteEventLog(str(folder / f"bus-{time.perf_counter_ns()}.db"))


def _measure(args: argparse.Namespace, folder: Path) -> dict[tuple[str, str], float]:
    """Return the median events per second of every (bus, mode) pair."""
    rates: dict[tuple[str, str], list[float]] = {}

    def record(bus_name: str, mode: str, count: int, seconds: float) -> None:
        rates.setdefault((bus_name, mode), []).append(count / seconds)

    for round_index in range(args.rounds):
        for mode in MODES:
            memory_seconds = asyncio.run(_eventsync_round(MemoryEventLog(), args.events, mode=mode))
            record("eventsync, MemoryEventLog", mode, args.events, memory_seconds)

            sqlite_log = _sqlite_log(folder)
            try:
                sqlite_seconds = asyncio.run(_eventsync_round(sqlite_log, args.events, mode=mode))
            finally:
                sqlite_log.close()
            record("eventsync, SQLiteEventLog", mode, args.events, sqlite_seconds)

            if mode == "burst":
                continue
            publish = mode == "publish"
            record("blinker", mode, args.events, asyncio.run(_blinker_round(args.events, publish=publish)))
            record("bubus", mode, args.bubus_events, asyncio.run(_bubus_round(args.bubus_events, publish=publish)))
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr)

    return {key: statistics.median(values) for key, values in rates.items()}


def _report(args: argparse.Namespace, medians: dict[tuple[str, str], float]) -> None:
    print(f"python {platform.python_version()}, {platform.machine()}, blinker {_version('blinker')}, "
          f"bubus {_version('bubus')}")
    print(f"{args.events} events per round (bubus: {args.bubus_events}), {HANDLERS} async handlers, "
          f"median of {args.rounds} rounds\n")
    print("| bus | mode | events/s | / blinker | / bubus |")
    print("| --- | --- | ---: | ---: | ---: |")
    for mode in MODES:
        baseline_mode = "publish" if mode == "burst" else mode
        blinker_rate = medians[("blinker", baseline_mode)]
        bubus_rate = medians[("bubus", baseline_mode)]
        for bus_name in ("eventsync, MemoryEventLog", "eventsync, SQLiteEventLog", "blinker", "bubus"):
            rate = medians.get((bus_name, mode))
            if rate is None:
                continue
            print(f"| {bus_name} | {mode} | {rate:,.0f} | {rate / blinker_rate:.2f}x | {rate / bubus_rate:,.0f}x |")

    dispatch_rate = medians[("eventsync, MemoryEventLog", "dispatch")]
    blinker_ratio = dispatch_rate / medians[("blinker", "dispatch")]
    bubus_ratio = dispatch_rate / medians[("bubus", "dispatch")]
    print(f"\ntarget: dispatch on MemoryEventLog >= {BLINKER_TARGET}x blinker: {blinker_ratio:.2f}x "
          f"({'met' if blinker_ratio >= BLINKER_TARGET else 'MISSED'})")
    print(f"target: dispatch on MemoryEventLog >= {BUBUS_TARGET:.0f}x bubus: {bubus_ratio:,.0f}x "
          f"({'met' if bubus_ratio >= BUBUS_TARGET else 'MISSED'})")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def _profile(args: argparse.Namespace) -> None:
    """Print where eventsync's bus on MemoryEventLog spends its time in the dispatch and burst modes."""
    for mode in ("dispatch", "burst"):
        profiler = cProfile.Profile()
        asyncio.run(_eventsync_round(MemoryEventLog(), args.events, mode=mode, profiler=profiler))
        print(f"\n-- cProfile of eventsync on MemoryEventLog, {mode} mode --")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few events and one round")
    parser.add_argument("--events", type=int, default=20_000, help="events per round for eventsync and blinker")
    parser.add_argument("--bubus-events", type=int, default=300, help="events per round for bubus")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each figure is the median over rounds")
    parser.add_argument("--profile", action="store_true", help="also print cProfiles of eventsync's bus")
    args = parser.parse_args()
    if args.quick:
        args.events, args.bubus_events, args.rounds = 2_000, 50, 1

    # bubus warns about its own shutdown details; they do not affect the figures.
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory(prefix="eventsync-bench-bus-") as folder:
        medians = _measure(args, Path(folder))
    _report(args, medians)
    if args.profile:
        _profile(args)


if __name__ == "__main__":
    main()
