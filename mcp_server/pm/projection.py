"""The project-management state as a durable projection of the log.

:class:`PMProjection` is a durable consumer (see :mod:`mcp_server.consumers`)
that owns the ``pm_*`` tables: projects, tasks, people, dependencies, links
from tasks to touchpoints, each task's timeline, generic graph entities and
the bottlenecks already reported. Its only input is the log, so
``eventsync rebuild pm`` restores the same tables.

While applying an event it emits the events that follow from it, linked by
causation. ``task.completed`` yields ``project.progress.updated`` and one
``task.unblocked`` per dependent whose last open dependency it was.
``task.created`` yields ``project.progress.updated``. Any change to a
project's tasks may yield ``bottleneck.detected``. Their ids derive from the cause, and
the runner discards them while a rebuild replays history, so a rebuild
announces nothing twice. Every decision reads the event and the tables only,
with the event's timestamp standing in for "now", so replay is deterministic.

An event that breaks the graph (a dependency closing a cycle, a task in a
missing project, an invalid payload) changes nothing: it is recorded in
``pm_rejections`` and reported with ``event.failed``. The commands in
:mod:`mcp_server.pm.service` run the same checks first and raise instead, so
only events appended by other producers end up rejected.

Code changes reach tasks through their touchpoints: the projection keeps its
own map of which touchpoint names sit in which file (from the touchpoint
module's events), so a ``file.saved`` is matched against the touchpoints that
the log said were there at that moment, not against today's index.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mcp_server import clock, ids
from mcp_server.errors import InvalidEventError, NotFoundError
from mcp_server.events import make_event
from mcp_server.pm import tables
from mcp_server.pm.errors import TaskGraphError
from mcp_server.pm.events import (
    BottleneckDetected,
    EntityCreated,
    EntityDeleted,
    EntityUpdated,
    ProjectCreated,
    TaskAssigned,
    TaskCompleted,
    TaskCreated,
    TaskDependencyAdded,
    TaskDependencyRemoved,
    TaskUpdated,
    parse_payload,
)
from mcp_server.pm.tables import TaskRow
from mcp_server.store.base import StoredEvent

if TYPE_CHECKING:
    from mcp_server.pm.graph import Finding

__all__ = [
    "CODE_EVENT_TYPES",
    "COMMAND_EVENT_TYPES",
    "PMProjection",
    "bottleneck_event",
    "new_findings",
    "people_names",
    "percent",
    "progress_counts",
]

logger = logging.getLogger(__name__)

SOURCE = "module:pm"

COMMAND_EVENT_TYPES = (
    "project.created", "task.created", "task.updated", "task.dependency.added", "task.dependency.removed",
    "task.assigned", "task.completed", "bottleneck.detected", "entity.created", "entity.updated", "entity.deleted",
)
"""Project-management events the projection applies."""

CODE_EVENT_TYPES = (
    "file.saved", "code.modified", "code.deleted", "touchpoint.added", "touchpoint.removed", "touchpoint.updated",
)
"""Events that tell the projection code changed at a touchpoint."""

_CHANGE_RANK = {"edited": 0, "deleted": 0, "moved": 1, "added": 2, "removed": 2}
"""When one change reaches a task through several events, the most specific description wins."""

Emitted = list[dict[str, Any]]
Result = tuple[Emitted, set[str]]


def _graph() -> Any:
    # networkx takes about 100 ms to import; only events that need graph work pay for it.
    from mcp_server.pm import graph

    return graph


def _derived(event_type: str, payload: dict[str, Any], cause: StoredEvent, *key: str) -> dict[str, Any]:
    event_id = ids.derived_event_id("pm", cause.id, event_type, *key)
    return make_event(event_type, payload, source=SOURCE, cause=cause, event_id=event_id)


def _timeline(
    connection: sqlite3.Connection, task_id: str, ref: str, event: StoredEvent, kind: str, detail: dict[str, Any],
    *, event_id: str | None = None,
) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO pm_timeline (task_id, ref, position, event_id, kind, at, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (task_id, ref, event.position, event_id or event.id, kind, event.timestamp,
         json.dumps(detail, sort_keys=True, ensure_ascii=False)),
    )


def _touch(connection: sqlite3.Connection, task_id: str, event: StoredEvent) -> None:
    connection.execute("UPDATE pm_tasks SET last_activity_at = ? WHERE id = ?", (event.timestamp, task_id))


def _require_task(connection: sqlite3.Connection, task_id: str) -> TaskRow:
    task = tables.get_task(connection, task_id)
    if task is None:
        raise NotFoundError(f"no task with id {task_id!r}")
    return task


def _require_open(task: TaskRow, action: str) -> None:
    if not task.is_open:
        raise TaskGraphError(f"cannot {action} task {task.title!r} ({task.id}): it is already completed")


def _require_same_project(task: TaskRow, dependency: TaskRow) -> None:
    if dependency.project_id != task.project_id:
        raise TaskGraphError(
            f"task {task.id!r} (project {task.project_id!r}) cannot depend on {dependency.id!r} of project "
            f"{dependency.project_id!r}: dependencies stay within one project"
        )


def progress_counts(connection: sqlite3.Connection, project_id: str) -> tuple[int, int]:
    """Return ``(completed, total)`` tasks of the project."""
    row = connection.execute(
        "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FROM pm_tasks WHERE project_id = ?",
        (project_id,),
    ).fetchone()
    return int(row[0]), int(row[1])


def percent(completed: int, total: int) -> float:
    """Return the completed share in percent, rounded to one decimal (0 for an empty project)."""
    return round(100.0 * completed / total, 1) if total else 0.0


def _progress_event(connection: sqlite3.Connection, project_id: str, cause: StoredEvent) -> dict[str, Any]:
    completed, total = progress_counts(connection, project_id)
    payload = {"project_id": project_id, "completed": completed, "total": total, "percent": percent(completed, total)}
    return _derived("project.progress.updated", payload, cause, project_id)


def people_names(connection: sqlite3.Connection) -> dict[str, str]:
    """Return every person's display name by id."""
    return {str(row[0]): str(row[1]) for row in connection.execute("SELECT id, name FROM pm_people")}


def new_findings(connection: sqlite3.Connection, project_id: str, findings: list[Finding]) -> list[tuple[Finding, int]]:
    """Return the findings not reported as active yet, each with the episode number its report will carry."""
    fresh: list[tuple[Finding, int]] = []
    for finding in findings:
        row = connection.execute(
            "SELECT active, episode FROM pm_bottlenecks WHERE kind = ? AND subject = ?", (finding.kind, finding.subject)
        ).fetchone()
        if row is not None and row[0]:
            continue
        fresh.append((finding, int(row[1]) + 1 if row is not None else 1))
    return fresh


def bottleneck_event(
    project_id: str, finding: Finding, episode: int, *, cause: StoredEvent | None, source: str
) -> dict[str, Any]:
    """Build the ``bottleneck.detected`` event of one episode; its id depends only on kind, subject and episode."""
    payload = {"kind": finding.kind, "subject": finding.subject, "project_id": project_id, "reason": finding.reason,
               "numbers": finding.numbers, "episode": episode}
    event_id = ids.derived_event_id("pm", "bottleneck.detected", finding.kind, finding.subject, str(episode))
    return make_event("bottleneck.detected", payload, source=source, cause=cause, event_id=event_id)


def _store_bottleneck(connection: sqlite3.Connection, payload: BottleneckDetected, at: str, event_id: str) -> None:
    row = connection.execute(
        "SELECT episode FROM pm_bottlenecks WHERE kind = ? AND subject = ?", (payload.kind, payload.subject)
    ).fetchone()
    if row is not None and int(row[0]) >= payload.episode:
        return  # each episode is stored once, so a report read back after the bottleneck cleared stays cleared
    connection.execute(
        "INSERT OR REPLACE INTO pm_bottlenecks (kind, subject, project_id, active, episode, reason, details, "
        "detected_at, event_id) VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?)",
        (payload.kind, payload.subject, payload.project_id, payload.episode, payload.reason,
         json.dumps(payload.numbers, sort_keys=True), at, event_id),
    )


def _stall_cutoff(timestamp: str, hours: float) -> str | None:
    try:
        moment = datetime.fromisoformat(timestamp) - timedelta(hours=hours)
    except ValueError:
        return None
    return clock.utc_timestamp(int(moment.timestamp() * 1_000_000) * 1000)


class PMProjection:
    """Durable consumer that owns the project-management tables."""

    name = "pm"
    version = 1
    subscriptions = COMMAND_EVENT_TYPES + CODE_EVENT_TYPES
    depends_on: tuple[str, ...] = ()
    prepare_inline = True  # prepare does no I/O; see mcp_server.consumers.Projection
    emits = ("project.progress.updated", "task.unblocked", "bottleneck.detected", "event.failed")

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[[sqlite3.Connection, StoredEvent, Any], Result]] = {
            "project.created": self._project_created,
            "task.created": self._task_created,
            "task.updated": self._task_updated,
            "task.dependency.added": self._dependency_added,
            "task.dependency.removed": self._dependency_removed,
            "task.assigned": self._task_assigned,
            "task.completed": self._task_completed,
            "bottleneck.detected": self._bottleneck_detected,
            "entity.created": self._entity_created,
            "entity.updated": self._entity_updated,
            "entity.deleted": self._entity_deleted,
        }

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the project-management tables."""
        tables.create_tables(connection)

    def drop(self, connection: sqlite3.Connection) -> None:
        """Drop the project-management tables."""
        tables.drop_tables(connection)

    def prepare(self, event: StoredEvent) -> None:
        """Nothing to prepare: every decision reads only the event and the tables."""

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: None) -> Emitted:
        """Apply ``event`` to the tables and return the events that follow from it."""
        connection.execute("SAVEPOINT pm_apply")
        try:
            emitted, touched = self._dispatch(connection, event)
        except (InvalidEventError, NotFoundError, TaskGraphError) as exc:
            connection.execute("ROLLBACK TO pm_apply")
            connection.execute("RELEASE pm_apply")
            return self._reject(connection, event, exc)
        connection.execute("RELEASE pm_apply")
        return emitted + self._evaluate(connection, event, touched)

    def _dispatch(self, connection: sqlite3.Connection, event: StoredEvent) -> Result:
        handler = self._handlers.get(event.type)
        if handler is not None:
            return handler(connection, event, parse_payload(event.type, event.payload))
        return self._code_changed(connection, event)

    def _reject(self, connection: sqlite3.Connection, event: StoredEvent, exc: Exception) -> Emitted:
        project_id = event.payload.get("project_id")
        task = tables.get_task(connection, str(event.payload.get("task_id", "")))
        if not isinstance(project_id, str):
            project_id = task.project_id if task is not None else None
        error = f"{type(exc).__name__}: {exc}"
        connection.execute(
            "INSERT OR REPLACE INTO pm_rejections (event_id, position, event_type, project_id, error) VALUES (?, ?, ?, ?, ?)",
            (event.id, event.position, event.type, project_id, error),
        )
        logger.warning("pm: rejected %s %s: %s", event.type, event.id, exc)
        payload = {"event_id": event.id, "event_type": event.type, "handler": self.name, "error_type": type(exc).__name__,
                   "error": error, "attempt": 1, "parked": False, "reason": "rejected"}
        return [_derived("event.failed", payload, event)]

    # -- projects and tasks ------------------------------------------------------------

    def _project_created(self, connection: sqlite3.Connection, event: StoredEvent, payload: ProjectCreated) -> Result:
        if tables.get_project(connection, payload.project_id) is not None:
            raise TaskGraphError(f"project id {payload.project_id!r} already exists")
        connection.execute(
            "INSERT INTO pm_projects (id, title, description, created_at, position) VALUES (?, ?, ?, ?, ?)",
            (payload.project_id, payload.title, payload.description, event.timestamp, event.position),
        )
        return [], set()

    def _task_created(self, connection: sqlite3.Connection, event: StoredEvent, payload: TaskCreated) -> Result:
        if tables.get_project(connection, payload.project_id) is None:
            raise NotFoundError(f"no project with id {payload.project_id!r} for task {payload.task_id!r}")
        if tables.get_task(connection, payload.task_id) is not None:
            raise TaskGraphError(f"task id {payload.task_id!r} already exists")
        task = TaskRow(payload.task_id, payload.project_id, payload.title, "open", payload.estimate, None, None, None,
                       event.timestamp, event.position)
        for dependency_id in dict.fromkeys(payload.depends_on):
            dependency = task if dependency_id == task.id else _require_task(connection, dependency_id)
            _require_same_project(task, dependency)
            _graph().check_dependency(connection, task, dependency)

        connection.execute(
            "INSERT INTO pm_tasks (id, project_id, title, description, status, estimate, assignee, created_at, "
            "assigned_at, completed_at, last_activity_at, position) VALUES (?, ?, ?, ?, 'open', ?, NULL, ?, NULL, NULL, ?, ?)",
            (task.id, task.project_id, task.title, payload.description, task.estimate, event.timestamp,
             event.timestamp, event.position),
        )
        connection.executemany(
            "INSERT OR IGNORE INTO pm_dependencies (task_id, depends_on, created_at, event_id) VALUES (?, ?, ?, ?)",
            [(task.id, dependency_id, event.timestamp, event.id) for dependency_id in payload.depends_on],
        )
        connection.executemany(
            "INSERT OR IGNORE INTO pm_task_touchpoints (task_id, touchpoint) VALUES (?, ?)",
            [(task.id, name) for name in payload.touchpoints],
        )
        _timeline(connection, task.id, event.id, event, "created",
                  {"title": task.title, "depends_on": payload.depends_on, "touchpoints": payload.touchpoints})
        return [_progress_event(connection, task.project_id, event)], {task.project_id}

    def _task_updated(self, connection: sqlite3.Connection, event: StoredEvent, payload: TaskUpdated) -> Result:
        task = _require_task(connection, payload.task_id)
        if payload.title is not None:
            connection.execute("UPDATE pm_tasks SET title = ? WHERE id = ?", (payload.title, task.id))
        if payload.estimate is not None:
            connection.execute("UPDATE pm_tasks SET estimate = ? WHERE id = ?", (payload.estimate, task.id))
        connection.executemany(
            "INSERT OR IGNORE INTO pm_task_touchpoints (task_id, touchpoint) VALUES (?, ?)",
            [(task.id, name) for name in payload.add_touchpoints],
        )
        _touch(connection, task.id, event)
        _timeline(connection, task.id, event.id, event, "updated", payload.model_dump(exclude={"task_id"}))
        return [], {task.project_id}

    def _dependency_added(self, connection: sqlite3.Connection, event: StoredEvent, payload: TaskDependencyAdded) -> Result:
        task = _require_task(connection, payload.task_id)
        dependency = task if payload.depends_on == task.id else _require_task(connection, payload.depends_on)
        _require_same_project(task, dependency)
        _graph().check_dependency(connection, task, dependency)
        connection.execute(
            "INSERT OR IGNORE INTO pm_dependencies (task_id, depends_on, created_at, event_id) VALUES (?, ?, ?, ?)",
            (task.id, dependency.id, event.timestamp, event.id),
        )
        _touch(connection, task.id, event)
        _timeline(connection, task.id, event.id, event, "dependency.added", {"depends_on": dependency.id})
        return [], {task.project_id}

    def _dependency_removed(
        self, connection: sqlite3.Connection, event: StoredEvent, payload: TaskDependencyRemoved
    ) -> Result:
        task = _require_task(connection, payload.task_id)
        deleted = connection.execute(
            "DELETE FROM pm_dependencies WHERE task_id = ? AND depends_on = ?", (task.id, payload.depends_on)
        ).rowcount
        if not deleted:
            raise NotFoundError(f"task {task.id!r} does not depend on {payload.depends_on!r}")
        _touch(connection, task.id, event)
        _timeline(connection, task.id, event.id, event, "dependency.removed", {"depends_on": payload.depends_on})
        dependency = tables.get_task(connection, payload.depends_on)
        was_blocking = dependency is None or dependency.is_open or dependency.id == task.id
        emitted = self._unblocked(connection, event, {task.id}, payload.depends_on) if was_blocking else []
        return emitted, {task.project_id}

    def _task_assigned(self, connection: sqlite3.Connection, event: StoredEvent, payload: TaskAssigned) -> Result:
        task = _require_task(connection, payload.task_id)
        _require_open(task, "assign")
        connection.execute(
            "INSERT INTO pm_people (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            (payload.person_id, payload.assignee, event.timestamp),
        )
        connection.execute(
            "UPDATE pm_tasks SET assignee = ?, assigned_at = ?, last_activity_at = ? WHERE id = ?",
            (payload.person_id, event.timestamp, event.timestamp, task.id),
        )
        _timeline(connection, task.id, event.id, event, "assigned", {"person_id": payload.person_id,
                                                                      "assignee": payload.assignee})
        return [], {task.project_id}

    def _task_completed(self, connection: sqlite3.Connection, event: StoredEvent, payload: TaskCompleted) -> Result:
        task = _require_task(connection, payload.task_id)
        _require_open(task, "complete")
        # complete_task checks this too, but events from other producers reach only the projection.
        blockers = [
            row.id for row in tables.tasks_by_id(connection, set(tables.task_dependencies(connection, task.id))).values()
            if row.is_open
        ]
        if blockers:
            raise TaskGraphError(
                f"cannot complete task {task.title!r} ({task.id}): it waits for open tasks {', '.join(sorted(blockers))}"
            )
        connection.execute(
            "UPDATE pm_tasks SET status = 'completed', completed_at = ?, last_activity_at = ? WHERE id = ?",
            (event.timestamp, event.timestamp, task.id),
        )
        _timeline(connection, task.id, event.id, event, "completed", {})
        dependents = {str(row[0]) for row in connection.execute(
            "SELECT task_id FROM pm_dependencies WHERE depends_on = ?", (task.id,)
        )}
        emitted = [_progress_event(connection, task.project_id, event)]
        emitted += self._unblocked(connection, event, dependents, task.id)
        return emitted, {task.project_id}

    def _unblocked(self, connection: sqlite3.Connection, event: StoredEvent, candidates: set[str], by: str) -> Emitted:
        """Emit ``task.unblocked`` for each candidate that :func:`readiness` now lists as ready."""
        if not candidates:
            return []
        projects = sorted({task.project_id for task in tables.tasks_by_id(connection, candidates).values()})
        emitted: Emitted = []
        for project_id in projects:
            for ready in _graph().readiness(connection, project_id).ready:
                if ready.id not in candidates:
                    continue
                unblocked = _derived("task.unblocked", {"task_id": ready.id, "project_id": project_id,
                                                        "unblocked_by": by}, event, ready.id)
                _timeline(connection, ready.id, f"unblocked:{event.id}", event, "unblocked", {"unblocked_by": by},
                          event_id=unblocked["id"])
                emitted.append(unblocked)
        return emitted

    # -- bottlenecks -------------------------------------------------------------------

    def _bottleneck_detected(
        self, connection: sqlite3.Connection, event: StoredEvent, payload: BottleneckDetected
    ) -> Result:
        _store_bottleneck(connection, payload, event.timestamp, event.id)
        return [], set()

    def _evaluate(self, connection: sqlite3.Connection, event: StoredEvent, touched: set[str]) -> Emitted:
        """Report bottlenecks that arose in the touched projects, or that time alone created (stalls).

        NOTE: each evaluation loads and analyses the whole project, so a task event costs time
        linear in the project's size (about 40 ms at 1000 tasks in bench/bench_pm.py).
        """
        projects = touched | self._stalling_projects(connection, event.timestamp)
        if not projects:
            return []
        graph = _graph()
        people = people_names(connection)
        emitted: Emitted = []
        for project_id in sorted(projects):
            project = graph.ProjectGraph.load(connection, project_id)
            findings = graph.find_bottlenecks(project, event.timestamp, people)
            emitted.extend(self._sync_bottlenecks(connection, project_id, findings, event))
        return emitted

    @staticmethod
    def _stalling_projects(connection: sqlite3.Connection, now: str) -> set[str]:
        """Return projects with an assigned open task idle for the stall time and not yet reported as stalled."""
        assigned = connection.execute(
            "SELECT 1 FROM pm_tasks WHERE status = 'open' AND assignee IS NOT NULL LIMIT 1"
        ).fetchone()
        if assigned is None:
            return set()
        cutoff = _stall_cutoff(now, _graph().STALL_AFTER_HOURS)
        if cutoff is None:
            return set()
        rows = connection.execute(
            "SELECT DISTINCT project_id FROM pm_tasks WHERE status = 'open' AND assignee IS NOT NULL "
            "AND last_activity_at <= ? AND id NOT IN "
            "(SELECT subject FROM pm_bottlenecks WHERE kind = 'stalled' AND active = 1)",
            (cutoff,),
        )
        return {str(row[0]) for row in rows}

    def _sync_bottlenecks(
        self, connection: sqlite3.Connection, project_id: str, findings: list[Finding], cause: StoredEvent
    ) -> Emitted:
        emitted: Emitted = []
        for finding, episode in new_findings(connection, project_id, findings):
            report = bottleneck_event(project_id, finding, episode, cause=cause, source=SOURCE)
            _store_bottleneck(connection, BottleneckDetected.model_validate(report["payload"]), cause.timestamp,
                              report["id"])
            logger.info("pm: bottleneck %s %s in %s: %s", finding.kind, finding.subject, project_id, finding.reason)
            emitted.append(report)
        current = {(finding.kind, finding.subject) for finding in findings}
        for kind, subject in connection.execute(
            "SELECT kind, subject FROM pm_bottlenecks WHERE project_id = ? AND active = 1", (project_id,)
        ).fetchall():
            if (kind, subject) not in current:
                connection.execute("UPDATE pm_bottlenecks SET active = 0 WHERE kind = ? AND subject = ?", (kind, subject))
        return emitted

    # -- generic entities --------------------------------------------------------------

    def _entity_created(self, connection: sqlite3.Connection, event: StoredEvent, payload: EntityCreated) -> Result:
        if connection.execute("SELECT 1 FROM pm_entities WHERE id = ?", (payload.entity_id,)).fetchone():
            raise TaskGraphError(f"entity id {payload.entity_id!r} already exists")
        connection.execute(
            "INSERT INTO pm_entities (id, kind, attributes, created_at, updated_at, position) VALUES (?, ?, ?, ?, ?, ?)",
            (payload.entity_id, payload.kind, json.dumps(payload.attributes, sort_keys=True, ensure_ascii=False),
             event.timestamp, event.timestamp, event.position),
        )
        self._replace_links(connection, payload.entity_id, payload.links)
        return [], set()

    def _entity_updated(self, connection: sqlite3.Connection, event: StoredEvent, payload: EntityUpdated) -> Result:
        row = connection.execute("SELECT attributes FROM pm_entities WHERE id = ?", (payload.entity_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no entity with id {payload.entity_id!r}")
        attributes = {**json.loads(row[0]), **payload.attributes}
        attributes = {key: value for key, value in attributes.items() if value is not None}
        connection.execute(
            "UPDATE pm_entities SET attributes = ?, updated_at = ? WHERE id = ?",
            (json.dumps(attributes, sort_keys=True, ensure_ascii=False), event.timestamp, payload.entity_id),
        )
        if payload.links is not None:
            self._replace_links(connection, payload.entity_id, payload.links)
        return [], set()

    def _entity_deleted(self, connection: sqlite3.Connection, event: StoredEvent, payload: EntityDeleted) -> Result:
        if not connection.execute("DELETE FROM pm_entities WHERE id = ?", (payload.entity_id,)).rowcount:
            raise NotFoundError(f"no entity with id {payload.entity_id!r}")
        node = f"entity:{payload.entity_id}"
        connection.execute("DELETE FROM pm_links WHERE source = ? OR target = ?", (node, node))
        return [], set()

    @staticmethod
    def _replace_links(connection: sqlite3.Connection, entity_id: str, links: list[Any]) -> None:
        source = f"entity:{entity_id}"
        connection.execute("DELETE FROM pm_links WHERE source = ?", (source,))
        connection.executemany(
            "INSERT OR IGNORE INTO pm_links (source, relation, target) VALUES (?, ?, ?)",
            [(source, link.relation, link.target) for link in links],
        )

    # -- code changes at linked touchpoints ----------------------------------------------

    def _code_changed(self, connection: sqlite3.Connection, event: StoredEvent) -> Result:
        path = event.payload.get("path")
        if not isinstance(path, str) or not path:
            return [], set()
        if event.type in ("file.saved", "code.modified", "code.deleted"):
            change = "deleted" if event.type == "code.deleted" else "edited"
            names = [str(row[0]) for row in connection.execute(
                "SELECT name FROM pm_touchpoint_paths WHERE path = ? ORDER BY name", (path,)
            )]
            return [], self._record_changes(connection, event, path, {name: change for name in names})

        name = event.payload.get("name")
        if event.type == "touchpoint.added" and isinstance(name, str):
            connection.execute("INSERT OR IGNORE INTO pm_touchpoint_paths (path, name) VALUES (?, ?)", (path, name))
            return [], self._record_changes(connection, event, path, {name: "added"})
        if event.type == "touchpoint.removed" and isinstance(name, str):
            # One occurrence went; the per-file summary that follows restores the name if others remain.
            connection.execute("DELETE FROM pm_touchpoint_paths WHERE path = ? AND name = ?", (path, name))
            return [], self._record_changes(connection, event, path, {name: "removed"})
        if event.type == "touchpoint.updated":
            return [], self._summary(connection, event, path)
        return [], set()

    def _summary(self, connection: sqlite3.Connection, event: StoredEvent, path: str) -> set[str]:
        payload = event.payload
        current = payload.get("touchpoints")
        if isinstance(current, list) and not payload.get("truncated"):
            connection.execute("DELETE FROM pm_touchpoint_paths WHERE path = ?", (path,))
            connection.executemany(
                "INSERT OR IGNORE INTO pm_touchpoint_paths (path, name) VALUES (?, ?)",
                [(path, str(item["name"])) for item in current if isinstance(item, dict) and "name" in item],
            )
        moved = payload.get("moved")
        names = {str(item["name"]): "moved" for item in moved if isinstance(item, dict) and "name" in item} \
            if isinstance(moved, list) else {}
        return self._record_changes(connection, event, path, names)

    def _record_changes(
        self, connection: sqlite3.Connection, event: StoredEvent, path: str, changes: dict[str, str]
    ) -> set[str]:
        """Add one code change per linked task and touchpoint to the timelines; return the projects touched."""
        root = event.id
        if event.type.startswith("touchpoint."):
            root = str(event.metadata.get("causation_id") or event.id)
        touched: set[str] = set()
        for name, change in sorted(changes.items()):
            rows = connection.execute(
                "SELECT t.id, t.project_id, t.status FROM pm_task_touchpoints l JOIN pm_tasks t ON t.id = l.task_id "
                "WHERE l.touchpoint = ? ORDER BY t.id", (name,),
            ).fetchall()
            for task_id, project_id, status in rows:
                ref = f"code:{root}:{name}"
                if not self._more_specific(connection, str(task_id), ref, change):
                    continue
                _timeline(connection, str(task_id), ref, event, "code.changed",
                          {"path": path, "touchpoint": name, "change": change, "event_type": event.type})
                if status != "completed":
                    _touch(connection, str(task_id), event)
                    touched.add(str(project_id))
        return touched

    @staticmethod
    def _more_specific(connection: sqlite3.Connection, task_id: str, ref: str, change: str) -> bool:
        row = connection.execute("SELECT detail FROM pm_timeline WHERE task_id = ? AND ref = ?", (task_id, ref)).fetchone()
        if row is None:
            return True
        previous = json.loads(row[0]).get("change", "edited")
        return _CHANGE_RANK.get(change, 0) > _CHANGE_RANK.get(previous, 0)
