"""A large SQLite event log in a realistic mix, built once and reused from a cache by the benchmarks.

The log imitates long use of eventsync by eight Claude Code sessions. The
capture hook saves 5,000 files, runs shell commands and records changes and
deletions outside Claude's tools. In reaction to saves, the touchpoint index
emits touchpoint events and the context module invalidates cached context.
These reactions carry the save's correlation id and chain their causation ids. Skipped
files and a few handler failures complete the mix.
Timestamps advance 1.3 s per event from 2026-11-01, so a million events span
about fifteen days. Two percent of tool calls reach the log late, as events
that wait in the capture inbox do: their hook events keep a capture time up to
ten minutes earlier than the events logged before them.

:func:`projected_log` adds the state of every module (touchpoint index,
search, context and the rest) caught up to the head, as a project that has
run eventsync all along would have it.

The cache file name carries the event count and a hash of the log's schema and
of :data:`MIX_VERSION`, so a schema change or a change of the mix builds a new
log instead of reusing a stale one; stale files with the same count are
deleted. Set ``EVENTSYNC_BENCH_CACHE`` to keep the cache somewhere other than
``<temp>/eventsync-bench``.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mcp_server import clock, ids
from mcp_server.runtime import EVENTS_DB_NAME, Runtime
from mcp_server.store.base import EventFilter
from mcp_server.store.sqlite import SQLiteEventLog

__all__ = ["CACHE_DIR", "LogFacts", "cached_log", "projected_log"]

MIX_VERSION = 3
"""Bump when the mix below changes, so caches built from the old mix are rebuilt."""

CACHE_DIR = Path(os.environ.get("EVENTSYNC_BENCH_CACHE") or Path(tempfile.gettempdir()) / "eventsync-bench")

APPEND_BATCH = 10_000
PATHS = 5_000
SESSIONS = 8
START_NS = 1_793_491_200 * 10**9
"""2026-11-01T00:00:00Z in nanoseconds."""

STEP_NS = 1_300_000_000
"""Time between consecutive events: 1.3 s."""

LATE_SHARE = 0.02
"""Share of tool calls whose hook events are ingested late, with an earlier timestamp than the events before them."""

MAX_LATENESS_NS = 600 * 10**9

_WORDS = (
    "checkout", "total", "cart", "invoice", "payment", "refund", "login", "session", "token", "cache",
    "search", "index", "export", "import", "report", "billing", "shipping", "tax", "discount", "coupon",
    "user", "profile", "avatar", "upload", "retry", "queue", "webhook", "audit", "metrics", "health",
)
_COMMANDS = (
    "pytest -q tests/{area}", "git status", "git diff --stat", "ruff check src/{area}", "npm test -- {area}",
    "python -m {area}.cli --help", "ls src/{area}", "grep -rn {word} src/{area}",
)


@dataclass
class LogFacts:
    """Values the query benchmark filters on, read back from a built log."""

    path: Path
    count: int
    sessions: list[str] = field(default_factory=list)
    sample_path: str = ""
    sample_correlation_id: str = ""
    text_index_seconds: float = 0.0
    time_order_seconds: float = 0.0


def _schema_key(count: int) -> str:
    """Return a short hash of the log's schema DDL, the mix version and the event count."""
    with tempfile.TemporaryDirectory() as folder:
        log = SQLiteEventLog(os.path.join(folder, "schema.db"))
        ddl = [row[0] for row in log.connection.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")]
        log.close()
    digest = hashlib.sha256("\n".join([*ddl, f"mix {MIX_VERSION}", f"count {count}"]).encode()).hexdigest()
    return digest[:12]


def _event(
    event_type: str,
    payload: dict[str, object],
    *,
    source: str,
    session: str,
    time_ns: int,
    cause: dict[str, object] | None = None,
) -> dict[str, object]:
    """Return an event in wire form; ``cause`` links it into the cause's correlation chain."""
    event_id = ids.new_event_id()
    metadata: dict[str, object] = {"session_id": session, "correlation_id": event_id, "causation_id": None, "depth": 0}
    if cause is not None:
        cause_metadata = cause["metadata"]
        assert isinstance(cause_metadata, dict)
        metadata["correlation_id"] = cause_metadata["correlation_id"]
        metadata["causation_id"] = cause["id"]
        metadata["depth"] = int(cause_metadata["depth"]) + 1
    return {
        "id": event_id,
        "type": event_type,
        "timestamp": clock.utc_timestamp(time_ns),
        "source": source,
        "payload": payload,
        "metadata": metadata,
    }


class _Mix:
    """Produces the event stream, one tool call (an event and its reactions) at a time.

    Payloads follow the models in :mod:`mcp_server.schema.builtin`, so the
    modules that validate or project them treat the log as real history.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.produced = 0
        self.random = random.Random(20261101)
        self.paths = [f"src/{_WORDS[i % len(_WORDS)]}/module_{i}.py" for i in range(PATHS)]
        self.sessions = [f"session-{index:02d}-{ids.new_event_id()[:8]}" for index in range(SESSIONS)]
        self.touchpoints = [f"{a}-{b}" for a in _WORDS for b in _WORDS if a != b][:400]
        self.current_session = ""

    def next_group(self) -> list[dict[str, object]]:
        """Return the events of one tool call in log order, opening and closing sessions on the way."""
        time_ns = START_NS + self.produced * STEP_NS
        session = self.sessions[min(SESSIONS - 1, self.produced * SESSIONS // self.count)]
        group: list[dict[str, object]] = []
        if session != self.current_session:
            if self.current_session:
                group.append(self._session_event("session.ended", self.current_session, time_ns))
            group.append(self._session_event("session.started", session, time_ns + 500))
            self.current_session = session
        calls = self._group(session, time_ns + 1000)
        if self.random.random() < LATE_SHARE:
            captured = clock.utc_timestamp(time_ns + 1000 - self.random.randrange(1, MAX_LATENESS_NS))
            for event in calls:
                if event["source"] == "hook":
                    event["timestamp"] = captured
        group.extend(calls)
        self.produced += len(group)
        return group

    def _session_event(self, event_type: str, session: str, time_ns: int) -> dict[str, object]:
        return _event(event_type, {"session_id": session}, source="hook", session=session, time_ns=time_ns)

    def _group(self, session: str, time_ns: int) -> list[dict[str, object]]:
        roll = self.random.random()
        if roll < 0.62:
            return self._save(session, time_ns)
        if roll < 0.90:
            return [self._command(session, time_ns)]
        if roll < 0.96:
            payload = {"path": self.random.choice(self.paths), "content_hash": self._hash(), "size": self._size()}
            return [_event("code.modified", payload, source="hook", session=session, time_ns=time_ns)]
        if roll < 0.98:
            path = self.random.choice(self.paths)
            return [_event("code.deleted", {"path": path}, source="hook", session=session, time_ns=time_ns)]
        if roll < 0.99:
            payload = {"path": self.random.choice(self.paths).replace(".py", ".bin"), "reason": "binary"}
            return [_event("touchpoint.skipped", payload, source="touchpoints", session=session, time_ns=time_ns)]
        return self._failure(session, time_ns)

    def _save(self, session: str, time_ns: int) -> list[dict[str, object]]:
        path = self.random.choice(self.paths)
        tool = self.random.choice(("Edit", "Write", "MultiEdit"))
        saved = _event(
            "file.saved",
            {"path": path, "tool": tool, "change": "create" if tool == "Write" else "edit", "edits": 1,
             "content_hash": self._hash(), "size": self._size(), "exists": True},
            source="hook", session=session, time_ns=time_ns,
        )
        group = [saved]
        if self.random.random() < 0.5:
            return group

        added = [self._location(name, path) for name in self.random.sample(self.touchpoints, self.random.choice((0, 0, 1, 2)))]
        removed = [self._location(name, path) for name in self.random.sample(self.touchpoints, self.random.choice((0, 0, 0, 1)))]
        updated = _event(
            "touchpoint.updated",
            {"path": path, "deleted": False, "added": [item["name"] for item in added],
             "removed": [item["name"] for item in removed], "moved": [], "touchpoints": added, "truncated": False},
            source="touchpoints", session=session, time_ns=time_ns + 1000, cause=saved,
        )
        group.append(updated)
        for offset, location in enumerate(added, start=2):
            group.append(_event("touchpoint.added", location, source="touchpoints", session=session,
                                time_ns=time_ns + offset * 1000, cause=updated))
        for location in removed:
            group.append(_event("touchpoint.removed", location, source="touchpoints", session=session,
                                time_ns=time_ns + 9000, cause=updated))
        if added or removed:
            names = [item["name"] for item in added + removed]
            group.append(_event("context.invalidated", {"names": names, "path": path, "reason": "touchpoint.updated"},
                                source="context", session=session, time_ns=time_ns + 10_000, cause=updated))
        return group

    def _location(self, name: str, path: str) -> dict[str, object]:
        return {"name": name, "path": path, "line": self.random.randrange(1, 900), "column": 3,
                "description": f"{name.replace('-', ' ')} {self._words(4)}", "language": "python"}

    def _command(self, session: str, time_ns: int) -> dict[str, object]:
        template = self.random.choice(_COMMANDS)
        command = template.format(area=self.random.choice(_WORDS), word=self.random.choice(_WORDS))
        payload = {"command": command, "description": f"Run {command.split()[0]}", "cwd": ".", "interrupted": False,
                   "stale_files": []}
        return _event("command.executed", payload, source="hook", session=session, time_ns=time_ns)

    def _failure(self, session: str, time_ns: int) -> list[dict[str, object]]:
        path = self.random.choice(self.paths)
        saved = _event("file.saved", {"path": path, "tool": "Write", "change": "create", "size": 10, "exists": True},
                       source="hook", session=session, time_ns=time_ns)
        failed = _event(
            "event.failed",
            {"event_id": saved["id"], "event_type": "file.saved", "handler": "touchpoints",
             "error_type": "UnicodeDecodeError", "error": "UnicodeDecodeError: invalid start byte", "attempt": 1},
            source="bus", session=session, time_ns=time_ns + 1000, cause=saved,
        )
        return [saved, failed]

    def _hash(self) -> str:
        return f"sha256:{self.random.getrandbits(256):064x}"

    def _size(self) -> int:
        return self.random.randrange(200, 40_000)

    def _words(self, count: int) -> str:
        return " ".join(self.random.choice(_WORDS) for _ in range(count))


def _build(path: Path, count: int) -> None:
    """Write ``count`` events into a new log at ``path`` and fill its full-text index."""
    started = time.perf_counter()
    log = SQLiteEventLog(str(path))
    mix = _Mix(count)
    pending: list[dict[str, object]] = []
    written = 0
    while written + len(pending) < count:
        pending.extend(mix.next_group())
        if len(pending) >= APPEND_BATCH:
            log.append(pending[:APPEND_BATCH])
            written += APPEND_BATCH
            del pending[:APPEND_BATCH]
            if written % 100_000 == 0:
                print(f"built {written:,} of {count:,} events ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    log.append(pending[: count - written])

    # The first text query indexes the whole log, and the first time-bounded one checks the order of every
    # timestamp. Both run here, so those one-off costs stay out of the timings.
    indexing_started = time.perf_counter()
    log.query(EventFilter(text="checkout"), limit=1)
    (path.parent / f"{path.name}.text-index-seconds").write_text(f"{time.perf_counter() - indexing_started:.3f}\n")
    ordering_started = time.perf_counter()
    log.query(EventFilter(since=clock.utc_timestamp(START_NS)), limit=1)
    (path.parent / f"{path.name}.time-order-seconds").write_text(f"{time.perf_counter() - ordering_started:.3f}\n")
    log.checkpoint_wal()
    log.close()
    print(f"built {count:,} events in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def cached_log(count: int = 1_000_000) -> LogFacts:
    """Return the facts of a log of ``count`` events, building it into the cache if it is not there."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    key = _schema_key(count)
    path = CACHE_DIR / f"events-{count}-{key}.db"
    if not path.exists():
        for stale in [*CACHE_DIR.glob(f"events-{count}-*"), *CACHE_DIR.glob(f"building-{count}-*")]:
            stale.unlink()
        building = CACHE_DIR / f"building-{count}-{key}.db"
        print(f"building a log of {count:,} events at {path} (once; later runs reuse it)", file=sys.stderr)
        _build(building, count)
        for measured in ("text-index-seconds", "time-order-seconds"):
            (CACHE_DIR / f"{building.name}.{measured}").rename(CACHE_DIR / f"{path.name}.{measured}")
        building.rename(path)
    return _facts(path, count)


def _facts(path: Path, count: int) -> LogFacts:
    log = SQLiteEventLog(str(path))
    try:
        connection = log.connection
        middle = count // 2
        sessions = [row[0] for row in connection.execute(
            "SELECT session_id FROM events WHERE position IN (1, ?, ?) ORDER BY position", (middle, count))]
        sample_path = connection.execute(
            "SELECT json_extract(payload, '$.path') FROM events WHERE position >= ? AND type = 'file.saved' "
            "ORDER BY position LIMIT 1", (middle,)).fetchone()[0]
        sample_correlation = connection.execute(
            "SELECT correlation_id FROM events WHERE position >= ? AND type = 'touchpoint.added' "
            "ORDER BY position LIMIT 1", (middle,)).fetchone()[0]
    finally:
        log.close()
    return LogFacts(path=path, count=count, sessions=sessions, sample_path=str(sample_path),
                    sample_correlation_id=str(sample_correlation),
                    text_index_seconds=_seconds(path, "text-index-seconds"),
                    time_order_seconds=_seconds(path, "time-order-seconds"))


def _seconds(path: Path, measured: str) -> float:
    """Return a one-off duration recorded next to the log when it was built, or 0 if none was."""
    seconds_file = path.parent / f"{path.name}.{measured}"
    return float(seconds_file.read_text()) if seconds_file.exists() else 0.0


def _projections_key(base_key: str) -> str:
    """Return a hash of ``base_key`` and the name and version of every projection the runtime runs."""
    with tempfile.TemporaryDirectory() as folder:
        runtime = Runtime(folder, environ={})
        versions = sorted(f"{projection.name} {projection.version}" for projection in runtime.projections)
        runtime.close()
    return hashlib.sha256("\n".join([base_key, *versions]).encode()).hexdigest()[:12]


def projected_log(count: int = 1_000_000) -> Path:
    """Return a copy of the cached log whose modules have caught up to its head, building it if needed.

    The first build runs ``Runtime.catch_up`` over the whole log, which takes
    minutes for a million events; later calls reuse the file.
    """
    facts = cached_log(count)
    key = _projections_key(facts.path.stem.rsplit("-", 1)[-1])
    path = CACHE_DIR / f"projected-{count}-{key}.db"
    if path.exists():
        return path

    for stale in CACHE_DIR.glob(f"projected-{count}-*"):
        stale.unlink()
    project = Path(tempfile.mkdtemp(prefix="projecting-", dir=CACHE_DIR))
    try:
        data = project / ".eventsync"
        data.mkdir()
        copy = data / EVENTS_DB_NAME
        shutil.copyfile(facts.path, copy)
        print(f"catching up every module over {count:,} events into {path} (once; later runs reuse it)",
              file=sys.stderr)
        started = time.perf_counter()
        runtime = Runtime(str(project), environ={})
        try:
            runtime.catch_up()
            runtime.log.checkpoint_wal()
        finally:
            runtime.close()
        elapsed = time.perf_counter() - started
        print(f"modules caught up in {elapsed:.0f} s", file=sys.stderr)
        (CACHE_DIR / f"{path.name}.catch-up-seconds").write_text(f"{elapsed:.1f}\n")
        os.replace(copy, path)
    finally:
        shutil.rmtree(project)
    return path
