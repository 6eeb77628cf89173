"""Dependency cycles are rejected, and a cycle already in the tables never hangs readiness."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Project
from mcp_server.errors import NotFoundError
from mcp_server.pm.errors import AmbiguousReferenceError, DependencyCycleError, DuplicateTitleError
from mcp_server.runtime import Runtime
from pm_support import store_with_cycle


@pytest.fixture
def runtime(project: Project) -> Iterator[Runtime]:
    opened = project.runtime()
    yield opened
    opened.close()


def _ready(runtime: Runtime, project: str) -> list[str]:
    return [task.title for task in runtime.pm.project_status(project).ready]


def _shop(runtime: Runtime) -> None:
    runtime.pm.create_project("shop")
    for title in ("A", "B", "C"):
        runtime.pm.add_task("shop", title)


def test_cycle_rejected_naming_loop(runtime: Runtime) -> None:
    _shop(runtime)
    runtime.pm.update_task("A", depends_on=["B"])
    runtime.pm.update_task("B", depends_on=["C"])

    with pytest.raises(DependencyCycleError) as closing:
        runtime.pm.update_task("C", depends_on=["A"])
    with pytest.raises(DependencyCycleError) as itself:
        runtime.pm.update_task("A", depends_on=["A"])

    assert "cycle" in str(closing.value)
    assert "C → A → B → C" in str(closing.value)
    assert closing.value.loop == ["c", "a", "b", "c"]
    assert "itself" in str(itself.value)
    assert itself.value.loop == ["a", "a"]


def test_case_readiness_sequence(runtime: Runtime) -> None:
    _shop(runtime)
    runtime.pm.update_task("A", depends_on=["B"])
    runtime.pm.update_task("B", depends_on=["C"])
    for task, dependency in (("C", "A"), ("A", "A")):
        with pytest.raises(DependencyCycleError):
            runtime.pm.update_task(task, depends_on=[dependency])

    status = runtime.pm.project_status("shop")
    assert {(edge.task, edge.depends_on) for edge in status.dependencies} == {("a", "b"), ("b", "c")}
    assert _ready(runtime, "shop") == ["C"]
    runtime.pm.complete_task("C")
    assert _ready(runtime, "shop") == ["B"]
    runtime.pm.complete_task("B")
    assert _ready(runtime, "shop") == ["A"]


def test_cycle_in_one_command_rejected(runtime: Runtime) -> None:
    _shop(runtime)
    runtime.pm.update_task("A", depends_on=["B"])

    with pytest.raises(DependencyCycleError):
        runtime.pm.update_task("B", depends_on=["C", "A"])

    assert [(edge.task, edge.depends_on) for edge in runtime.pm.project_status("shop").dependencies] == [("a", "b")]


def test_removing_edge_allows_reverse(runtime: Runtime) -> None:
    _shop(runtime)
    runtime.pm.update_task("A", depends_on=["B"])

    result = runtime.pm.update_task("A", remove_depends_on=["B"])
    reverse = runtime.pm.update_task("B", depends_on=["A"])

    assert result.task.depends_on == []
    assert reverse.task.depends_on == ["a"]


def _imported(runtime: Runtime) -> None:
    runtime.pm.create_project("imported")
    for title in ("X", "Y", "Z"):
        runtime.pm.add_task("imported", title)


def test_stored_cycle_reported_not_ready(project: Project, tmp_path: Path) -> None:
    copy = Runtime(str(store_with_cycle(project.root, tmp_path)), environ={})
    try:
        status = copy.pm.project_status("imported")
    finally:
        copy.close()

    assert [task.id for task in status.ready] == ["z"]
    assert status.cycles == [["x", "y", "x"]]
    assert any("cycle X → Y → X" in warning for warning in status.warnings)
    assert {item.id for item in status.blocked if item.in_cycle} == {"x", "y"}


def test_stored_cycle_repaired_by_removal(project: Project, tmp_path: Path) -> None:
    copy = Runtime(str(store_with_cycle(project.root, tmp_path)), environ={})
    try:
        repaired = copy.pm.update_task("X", remove_depends_on=["Y"])
        status = copy.pm.project_status("imported")
    finally:
        copy.close()

    assert [ref.id for ref in repaired.unblocked] == ["x"]
    assert status.cycles == []
    assert [task.id for task in status.ready] == ["x", "z"]


def test_self_dependency_in_tables_reported(runtime: Runtime) -> None:
    _imported(runtime)
    with runtime.log.transaction() as connection:
        connection.execute(
            "INSERT INTO pm_dependencies (task_id, depends_on, created_at, event_id) VALUES ('z', 'z', '', 'import')"
        )

    status = runtime.pm.project_status("imported")

    assert status.cycles == [["z", "z"]]
    assert [task.id for task in status.ready] == ["x", "y"]


def test_title_references_resolve(runtime: Runtime) -> None:
    runtime.pm.create_project("web")
    runtime.pm.create_project("api")
    runtime.pm.add_task("web", "Deploy")
    runtime.pm.add_task("api", "Deploy")

    with pytest.raises(AmbiguousReferenceError) as ambiguous:
        runtime.pm.complete_task("Deploy")
    done = runtime.pm.complete_task("Deploy", project="API")

    assert "deploy in web" in str(ambiguous.value)
    assert "deploy-2 in api" in str(ambiguous.value)
    assert done.task.id == "deploy-2"
    assert done.task.status == "completed"


def test_duplicate_titles_rejected(runtime: Runtime) -> None:
    runtime.pm.create_project("shop")
    runtime.pm.add_task("shop", "Write docs")

    with pytest.raises(DuplicateTitleError):
        runtime.pm.create_project("Shop")
    with pytest.raises(DuplicateTitleError):
        runtime.pm.add_task("shop", "write DOCS")


def test_unknown_references_not_found(runtime: Runtime) -> None:
    runtime.pm.create_project("shop")

    with pytest.raises(NotFoundError, match="no project with id or title 'nope'"):
        runtime.pm.add_task("nope", "A")
    with pytest.raises(NotFoundError, match="no task with id or title 'ghost'"):
        runtime.pm.add_task("shop", "A", depends_on=["ghost"])


def test_blocked_task_cannot_complete(runtime: Runtime) -> None:
    from mcp_server.pm.errors import TaskGraphError

    _shop(runtime)
    runtime.pm.update_task("A", depends_on=["B"])

    with pytest.raises(TaskGraphError, match="is blocked by open tasks: 'B'"):
        runtime.pm.complete_task("A")
    runtime.pm.complete_task("B")
    runtime.pm.complete_task("A")

    assert _ready(runtime, "shop") == ["C"]
