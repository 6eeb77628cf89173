"""Operating the log: statistics, parked events, replay, retention, publish_many and tail."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from conftest import Project
from mcp_server.bus import EventBus
from mcp_server.errors import ConfigurationError, InvalidEventError, NotFoundError
from mcp_server.events import make_event
from mcp_server.retention import RetentionRule
from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter, StoredEvent


@pytest.fixture
def runtime(project: Project) -> Runtime:
    opened = project.runtime()
    yield opened
    opened.close()


def _cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_server", *args], capture_output=True, text=True, timeout=60, check=False,
        cwd=project.root, env={**os.environ, "CLAUDE_PROJECT_DIR": str(project.root)},
    )


def test_statistics_report_lag_and_failures(project: Project, runtime: Runtime) -> None:
    project.write("src/a.py", "# @touchpoint alpha\n")
    runtime.log.append([make_event("file.saved", {"path": "src/a.py"}, source="test"),
                        make_event("file.saved", {"path": "../escape.py"}, source="test")])

    before = {c["name"]: c for c in runtime.statistics()["consumers"]}
    runtime.catch_up()
    after = runtime.statistics()

    assert before["touchpoints"]["lag"] == 2
    consumers = {c["name"]: c for c in after["consumers"]}
    assert consumers["touchpoints"]["lag"] == 0
    assert consumers["touchpoints"]["parked"] == 1
    assert consumers["touchpoints"]["failed"] == 1
    assert after["parked_events"] == 1
    assert after["head"] == runtime.log.head()
    assert after["size_bytes"]["database"] > 0


class FlakyProjection:
    """Fails on every event while ``broken`` is set, as a module with a bug would."""

    name = "flaky"
    version = 1
    subscriptions = ("note.added",)
    depends_on: tuple[str, ...] = ()
    broken = True

    def create(self, connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE IF NOT EXISTS flaky_notes (event_id TEXT PRIMARY KEY)")

    def drop(self, connection: sqlite3.Connection) -> None:
        connection.execute("DROP TABLE IF EXISTS flaky_notes")

    def prepare(self, event: StoredEvent) -> None:
        if self.broken:
            raise KeyError("text")

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: None) -> list[dict]:
        connection.execute("INSERT INTO flaky_notes VALUES (?)", (event.id,))
        return []


def test_parked_listed_and_replayed(runtime: Runtime) -> None:
    flaky = FlakyProjection()
    runtime.add_projection(flaky)
    [note] = runtime.log.append([make_event("note.added", {}, source="test")])
    runtime.catch_up()
    [entry] = runtime.parked("flaky")

    flaky.broken = False
    outcome = runtime.replay_parked(note.id)

    assert entry["event_id"] == note.id
    assert entry["error"] == "KeyError: 'text'"
    assert outcome == [{"module": "flaky", "event_id": note.id, "replayed": True}]
    assert runtime.parked() == []
    assert runtime.log.connection.execute("SELECT event_id FROM flaky_notes").fetchall() == [(note.id,)]


def test_replay_unknown_parked_event(runtime: Runtime) -> None:
    with pytest.raises(NotFoundError, match="is not parked"):
        runtime.replay_parked("no-such-id")


def test_replay_range_rebuilds_state(project: Project, runtime: Runtime) -> None:
    project.write("src/a.py", "# @touchpoint alpha\n")
    runtime.log.append([make_event("file.saved", {"path": "src/a.py"}, source="test")])
    runtime.catch_up()
    runtime.log.connection.execute("DELETE FROM touchpoints")
    runtime.log.connection.execute("DELETE FROM touchpoint_files")

    count = runtime.replay("touchpoints", 0)

    assert count == 1
    assert [row.name for row in runtime.list_touchpoints()[0]] == ["alpha"]


def test_retention_keeps_latest_per_path(runtime: Runtime) -> None:
    old = [make_event("file.saved", {"path": f"src/m{i % 3}.py"}, source="test") for i in range(9)]
    for event in old:
        event["timestamp"] = "2020-01-01T00:00:00.000000Z"
    runtime.log.append(old)
    runtime.log.append([make_event("note.added", {"text": "keep me"}, source="test")])

    deleted = runtime.prune([RetentionRule(type="file.saved", max_age_days=30, keep_latest_per="path")])

    assert deleted == {"file.saved": 6}
    remaining = runtime.log.query(EventFilter(types=("file.saved",)), limit=50).events
    assert sorted(event.payload["path"] for event in remaining) == ["src/m0.py", "src/m1.py", "src/m2.py"]
    assert runtime.log.query(EventFilter(types=("note.added",))).total == 1


def test_retention_spares_unprocessed_events(runtime: Runtime) -> None:
    runtime.log.append([make_event("note.added", {"n": i}, source="test") for i in range(10)])
    runtime.catch_up()
    with runtime.log.transaction() as connection:
        runtime.log.set_checkpoint(connection, "slow-consumer", 4)

    deleted = runtime.log.delete_events(("note.added",), protect_after=min(runtime.log.checkpoints().values()),
                                        keep_latest=0)

    assert deleted == 4
    assert [e.payload["n"] for e in runtime.log.query(EventFilter(), descending=False).events] == [4, 5, 6, 7, 8, 9]


def test_retention_rule_needs_a_limit() -> None:
    with pytest.raises(ConfigurationError, match="sets no limit"):
        RetentionRule(type="file.saved").validate()


def test_retention_field_must_be_indexed(runtime: Runtime) -> None:
    with pytest.raises(InvalidEventError, match="has no index"):
        runtime.prune([RetentionRule(type="file.saved", max_age_days=1, keep_latest_per="colour")])


@pytest.mark.anyio
async def test_publish_many_is_atomic(tmp_path: Path) -> None:
    from mcp_server.store.sqlite import SQLiteEventLog

    log = SQLiteEventLog(str(tmp_path / "events.db"))
    bus = EventBus(log)
    seen: list[str] = []
    bus.subscribe("batch.*", lambda event: seen.append(event.type))
    async with anyio.create_task_group() as group:
        await group.start(bus.run)
        stored = await bus.publish_many([("batch.one", {}), ("batch.two", {})])
        with pytest.raises(InvalidEventError):
            await bus.publish_many([("batch.three", {}), ("Not Valid", {})])
        with anyio.fail_after(5):
            await bus.wait_idle()
        stats = bus.statistics()
        group.cancel_scope.cancel()
    log.close()

    assert [event.type for event in stored] == ["batch.one", "batch.two"]
    assert seen == ["batch.one", "batch.two"]
    assert stats[0]["delivered"] == 2
    assert stats[0]["lag"] == 0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_cli_stats_and_parked(project: Project) -> None:
    project.write("src/a.py", "# @touchpoint alpha\n")
    project.run_hook({"session_id": "s", "hook_event_name": "PostToolUse", "tool_name": "Write",
                      "tool_input": {"file_path": str(project.root / "src/a.py")}, "tool_use_id": "toolu_1"})

    stats = _cli(project, "stats", "--json")
    parked = _cli(project, "parked", "--json")
    text = _cli(project, "stats")

    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)
    assert data["head"] >= 1
    assert {c["name"] for c in data["consumers"]} >= {"touchpoints", "search", "context"}
    assert json.loads(parked.stdout) == []
    assert "consumer" in text.stdout


def test_cli_tail_prints_recent(project: Project) -> None:
    runtime = project.runtime()
    runtime.log.append([make_event("note.added", {"path": f"n{i}"}, source="test") for i in range(3)])
    runtime.close()

    result = _cli(project, "tail", "-n", "2", "--type", "note.*")

    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].split()[-1] == "n1"
    assert lines[1].split()[-1] == "n2"


def test_configured_retention_applied(project: Project) -> None:
    (project.root / ".eventsync").mkdir(exist_ok=True)
    (project.root / ".eventsync" / "config.toml").write_text(
        '[[retention]]\ntype = "note.added"\nmax_count = 2\n', encoding="utf-8"
    )
    runtime = project.runtime()
    try:
        runtime.log.append([make_event("note.added", {"n": i}, source="test") for i in range(5)])
        deleted = runtime.prune()
        remaining = [e.payload["n"] for e in runtime.log.query(EventFilter(types=("note.added",))).events]
    finally:
        runtime.close()

    assert deleted == {"note.added": 3}
    assert remaining == [4, 3]
