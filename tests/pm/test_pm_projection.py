"""The project-management projection: flows with causation, rebuild equality, code links, bottlenecks, entities."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Project
from mcp_server import clock
from mcp_server.errors import NotFoundError
from mcp_server.events import make_event
from mcp_server.pm import PAYLOAD_MODELS
from mcp_server.pm.tables import TABLES
from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter, StoredEvent

DAY_NS = 24 * 3600 * 10**9


@pytest.fixture
def runtime(project: Project) -> Iterator[Runtime]:
    opened = project.runtime()
    yield opened
    opened.close()


def _events(runtime: Runtime, *types: str) -> list[StoredEvent]:
    return runtime.log.query(EventFilter(types=types), limit=500, descending=False).events


def _append(runtime: Runtime, event_type: str, payload: dict[str, Any], *, days_ago: float = 0) -> StoredEvent:
    event = make_event(event_type, payload, source="test")
    if days_ago:
        event["timestamp"] = clock.utc_timestamp(time.time_ns() - int(days_ago * DAY_NS))
    [stored] = runtime.log.append([event])
    runtime.catch_up()
    return stored


def _save(project: Project, runtime: Runtime, relative: str, content: str) -> StoredEvent:
    project.write(relative, content)
    return _append(runtime, "file.saved", {"path": relative})


def _dump(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    connection = runtime.log.connection
    return {table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall(), key=repr) for table in TABLES}


def _chain(runtime: Runtime) -> None:
    runtime.pm.create_project("shop")
    runtime.pm.add_task("shop", "A", estimate=2)
    runtime.pm.add_task("shop", "B", depends_on=["A"])
    runtime.pm.add_task("shop", "C", depends_on=["B"], estimate=2, touchpoints=["checkout-total"])


def test_completion_emits_caused_events(runtime: Runtime) -> None:
    _chain(runtime)
    runtime.pm.add_task("shop", "D", depends_on=["A"])

    result = runtime.pm.complete_task("A")

    [completed] = _events(runtime, "task.completed")
    progress = [e for e in _events(runtime, "project.progress.updated") if e.metadata["causation_id"] == completed.id]
    unblocked = _events(runtime, "task.unblocked")
    assert [ref.id for ref in result.unblocked] == ["b", "d"]
    assert [e.payload["task_id"] for e in unblocked] == ["b", "d"]
    assert all(e.metadata["causation_id"] == completed.id for e in unblocked)
    assert all(e.metadata["correlation_id"] == completed.id for e in unblocked)
    assert [e.payload for e in progress] == [{"project_id": "shop", "completed": 1, "total": 4, "percent": 25.0}]
    assert result.progress.percent == 25.0


def test_project_created_event(runtime: Runtime) -> None:
    created = runtime.pm.create_project("Web Shop", description="the storefront")

    [event] = _events(runtime, "project.created")
    assert created.id == "web-shop"
    assert event.payload == {"project_id": "web-shop", "title": "Web Shop", "description": "the storefront"}
    assert event.source == "cli"


def test_assignment_caused_by_creation(runtime: Runtime) -> None:
    runtime.pm.create_project("shop")

    result = runtime.pm.add_task("shop", "A", assignee="Alice")

    [created] = _events(runtime, "task.created")
    [assigned] = _events(runtime, "task.assigned")
    assert result.task.assignee == "Alice"
    assert assigned.payload == {"task_id": "a", "person_id": "alice", "assignee": "Alice"}
    assert assigned.metadata["causation_id"] == created.id


def _scenario(project: Project, runtime: Runtime) -> None:
    """Every kind of event the projection handles, including a rejected one and all three bottlenecks."""
    _chain(runtime)
    runtime.pm.add_task("shop", "D", depends_on=["A"])
    _append(runtime, "task.assigned", {"task_id": "a", "person_id": "alice", "assignee": "Alice"}, days_ago=3)
    runtime.pm.assign_task("B", "Bob")
    runtime.pm.assign_task("C", "bob")
    _save(project, runtime, "src/cart.py", "# @touchpoint checkout-total Sums the cart\ndef total():\n    return 0\n")
    _save(project, runtime, "src/cart.py", "# @touchpoint checkout-total Sums the cart\ndef total():\n    return 1\n")
    _append(runtime, "task.dependency.added", {"task_id": "a", "depends_on": "c"})
    milestone = runtime.pm.create_entity("milestone", {"name": "Beta"}, [("includes", "task:a")])
    runtime.pm.update_entity(milestone.id, {"due": "2026-01-01"})
    scratch = runtime.pm.create_entity("note", {"title": "scratch"})
    runtime.pm.delete_entity(scratch.id)
    runtime.pm.complete_task("A")
    runtime.pm.update_task("C", estimate=3, touchpoints=["payment-capture"])


def test_rebuild_equals_incremental(project: Project, runtime: Runtime) -> None:
    _scenario(project, runtime)
    incremental = _dump(runtime)
    events_before = [event.id for event in runtime.log.read_after(0, limit=500)]

    rebuilt = runtime.rebuild("pm")

    assert rebuilt[0] == "pm"
    assert _dump(runtime) == incremental
    assert [event.id for event in runtime.log.read_after(0, limit=500)] == events_before
    assert incremental["pm_rejections"] != []
    assert {row[0] for row in incremental["pm_bottlenecks"]} == {"blocking", "critical_path_owner", "stalled"}


def test_rejected_event_recorded(runtime: Runtime) -> None:
    _chain(runtime)

    bad = _append(runtime, "task.dependency.added", {"task_id": "a", "depends_on": "c"})
    invalid = _append(runtime, "task.completed", {"task": "a"})

    failures = {e.payload["event_id"]: e for e in _events(runtime, "event.failed")}
    status = runtime.pm.project_status("shop")
    assert failures[bad.id].payload["handler"] == "pm"
    assert "A → C → B → A" in str(failures[bad.id].payload["error"])
    assert failures[bad.id].metadata["causation_id"] == bad.id
    assert "task_id" in str(failures[invalid.id].payload["error"])
    assert {(edge.task, edge.depends_on) for edge in status.dependencies} == {("b", "a"), ("c", "b")}
    assert any(bad.id in warning and "cycle" in warning for warning in status.warnings)
    assert [task.id for task in status.ready] == ["a"]


def test_forged_completion_of_blocked_task_rejected(runtime: Runtime) -> None:
    _chain(runtime)

    # Appended straight to the log, as a replayed or hand-written event would be, so complete_task never checks it.
    forged = _append(runtime, "task.completed", {"task_id": "c"})

    failures = {e.payload["event_id"]: e for e in _events(runtime, "event.failed")}
    status = runtime.pm.project_status("shop")
    detail = runtime.pm.task_detail("c")
    assert detail.task.status == "open"
    assert "waits for open tasks b" in str(failures[forged.id].payload["error"])
    assert failures[forged.id].payload["reason"] == "rejected"
    assert any(forged.id in warning for warning in status.warnings)
    assert status.project.progress.completed == 0


def test_code_change_in_timeline(project: Project, runtime: Runtime) -> None:
    _chain(runtime)
    first = _save(project, runtime, "src/cart.py", "# @touchpoint checkout-total Sums\ndef total():\n    return 0\n")
    second = _save(project, runtime, "src/cart.py", "# @touchpoint checkout-total Sums\ndef total():\n    return 1\n")
    _save(project, runtime, "src/other.py", "x = 1\n")

    status = runtime.pm.project_status("shop")
    detail = runtime.pm.task_detail("C")

    changes = [(c.task, c.touchpoint, c.path, c.change, c.event_id) for c in status.recent_code_changes]
    [added] = _events(runtime, "touchpoint.added")
    assert changes == [("c", "checkout-total", "src/cart.py", "edited", second.id),
                       ("c", "checkout-total", "src/cart.py", "added", added.id)]
    assert added.metadata["causation_id"] == first.id
    code = [entry for entry in detail.timeline if entry.kind == "code.changed"]
    assert [entry.detail["change"] for entry in code] == ["edited", "added"]
    assert code[0].at == second.timestamp


def test_removed_touchpoint_recorded(project: Project, runtime: Runtime) -> None:
    _chain(runtime)
    _save(project, runtime, "src/cart.py", "# @touchpoint checkout-total Sums\n")
    removal = _save(project, runtime, "src/cart.py", "# nothing here\n")

    changes = runtime.pm.project_status("shop").recent_code_changes

    assert [(c.change, c.path) for c in changes] == [("removed", "src/cart.py"), ("added", "src/cart.py")]
    assert _events(runtime, "touchpoint.removed")[0].metadata["causation_id"] == removal.id


def test_blocking_bottleneck_reported_once(runtime: Runtime) -> None:
    _chain(runtime)
    runtime.pm.add_task("shop", "D", depends_on=["A"])
    runtime.pm.add_task("shop", "E", depends_on=["D"])
    runtime.pm.assign_task("E", "Ann")

    reports = [e for e in _events(runtime, "bottleneck.detected") if e.payload["kind"] == "blocking"]
    [blocking] = reports
    assert blocking.payload["subject"] == "a"
    assert blocking.payload["numbers"]["waiting_tasks"] == 3
    assert blocking.payload["episode"] == 1
    [task_d] = [e for e in _events(runtime, "task.created") if e.payload["task_id"] == "d"]
    assert blocking.metadata["causation_id"] == task_d.id
    assert [b.subject for b in runtime.pm.project_status("shop").bottlenecks] == ["a"]

    runtime.pm.complete_task("A")
    assert runtime.pm.project_status("shop").bottlenecks == []


def test_critical_path_owner_reported(runtime: Runtime) -> None:
    _chain(runtime)
    runtime.pm.assign_task("B", "Bob")
    assert _events(runtime, "bottleneck.detected") == []

    runtime.pm.assign_task("C", "Bob")

    [report] = _events(runtime, "bottleneck.detected")
    assert report.payload["kind"] == "critical_path_owner"
    assert report.payload["subject"] == "bob"
    assert report.payload["numbers"]["share"] == 0.6
    assert "Bob holds 2 of the 3 tasks" in report.payload["reason"]


def test_stall_found_by_later_event(project: Project, runtime: Runtime) -> None:
    _chain(runtime)
    _append(runtime, "task.assigned", {"task_id": "a", "person_id": "alice", "assignee": "Alice"}, days_ago=2)
    assert _events(runtime, "bottleneck.detected") == []

    later = _save(project, runtime, "src/other.py", "x = 1\n")
    _save(project, runtime, "src/other.py", "x = 2\n")

    [report] = _events(runtime, "bottleneck.detected")
    assert report.payload["kind"] == "stalled"
    assert report.payload["subject"] == "a"
    assert report.payload["numbers"]["idle_hours"] >= 47
    assert report.metadata["causation_id"] == later.id


def test_stall_found_by_status_once(runtime: Runtime) -> None:
    _chain(runtime)
    _append(runtime, "task.assigned", {"task_id": "a", "person_id": "alice", "assignee": "Alice"}, days_ago=2)

    first = runtime.pm.project_status("shop")
    second = runtime.pm.project_status("shop")

    [report] = _events(runtime, "bottleneck.detected")
    assert report.source == "module:pm"
    assert [(b.kind, b.subject) for b in first.bottlenecks] == [("stalled", "a")]
    assert second.bottlenecks == first.bottlenecks

    runtime.pm.update_task("A", estimate=3)
    assert runtime.pm.project_status("shop").bottlenecks == []


def test_entities_linked_into_graph(runtime: Runtime) -> None:
    _chain(runtime)
    milestone = runtime.pm.create_entity("milestone", {"name": "Beta", "week": 3}, [("includes", "task:a")])
    risk = runtime.pm.create_entity("risk", {"title": "vendor late"}, [("threatens", f"entity:{milestone.id}")])

    updated = runtime.pm.update_entity(milestone.id, {"week": None, "owner": "alice"})
    runtime.pm.delete_entity(risk.id)

    assert milestone.id == "beta"
    assert [(link.relation, link.node) for link in milestone.links] == [("includes", "task:a")]
    assert updated.attributes == {"name": "Beta", "owner": "alice"}
    assert [(link.relation, link.node) for link in updated.linked_from] == [("threatens", "entity:vendor-late")]
    assert runtime.pm.get_entity(milestone.id).linked_from == []
    assert [e.type for e in _events(runtime, "entity.*")] == [
        "entity.created", "entity.created", "entity.updated", "entity.deleted"]
    with pytest.raises(NotFoundError):
        runtime.pm.create_entity("note", {}, [("about", "task:ghost")])


def test_payload_models_cover_catalog() -> None:
    from mcp_server.events import CATALOG

    owned = {name for name, entry in CATALOG.items() if entry.owner == "pm"}

    assert owned == set(PAYLOAD_MODELS)
    assert all(model.schema_version == 1 for model in PAYLOAD_MODELS.values())


def test_waiting_counts_match_ancestors() -> None:
    import networkx as nx

    from mcp_server.pm.graph import waiting_counts

    for seed in range(5):
        cyclic = nx.relabel_nodes(nx.gnp_random_graph(40, 0.06, directed=True, seed=seed), str)
        acyclic = nx.DiGraph([(u, v) for u, v in cyclic.edges if int(u) < int(v)])
        for graph in (cyclic, acyclic):
            assert waiting_counts(graph) == {node: len(nx.ancestors(graph, node) - {node}) for node in graph}
