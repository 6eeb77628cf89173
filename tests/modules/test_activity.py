"""Notification and analytics modules react to project events and rebuild from the log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import Project
from mcp_server.runtime import Runtime


@pytest.fixture
def runtime(project: Project) -> Iterator[Runtime]:
    opened = project.runtime()
    yield opened
    opened.close()


def _tables(runtime: Runtime) -> tuple[list[tuple], list[tuple]]:
    connection = runtime.log.connection
    return (connection.execute("SELECT * FROM notifications ORDER BY position").fetchall(),
            connection.execute("SELECT * FROM analytics_daily ORDER BY day, type, project").fetchall())


def test_project_flow_notified_and_counted(runtime: Runtime) -> None:
    runtime.pm.create_project("shop")
    runtime.pm.add_task("shop", "A")
    runtime.pm.add_task("shop", "B", depends_on=["A"])
    runtime.pm.assign_task("B", "Ann")
    runtime.pm.complete_task("A")

    messages = [entry["message"] for entry in reversed(runtime.recent_notifications())]
    activity = {(row["type"], row["count"]) for row in runtime.statistics()["activity"]}

    assert messages == [
        "project 'shop' created",
        "task 'b' assigned to Ann",
        "task 'b' can start: 'a' no longer blocks it",
    ]
    assert ("task.created", 2) in activity
    assert ("project.created", 1) in activity
    assert ("task.completed", 1) in activity


def test_activity_rebuild_equals_incremental(runtime: Runtime) -> None:
    runtime.pm.create_project("shop")
    runtime.pm.add_task("shop", "A")
    runtime.pm.complete_task("A")
    runtime.catch_up()
    incremental = _tables(runtime)

    runtime.rebuild("notifications")
    runtime.rebuild("analytics")

    assert _tables(runtime) == incremental
    assert incremental[0]
    assert incremental[1]
