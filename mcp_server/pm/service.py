"""Project-management commands and queries, shared by the MCP tools and ``eventsync pm``.

A command checks its input against the current tables and appends its
events inside one write transaction of the log. It does so only once the
projection has applied every earlier project-management event, so two
processes cannot both add the halves of a cycle. It then catches the
projection up and builds its result from the tables, including what the
projection derived (tasks unblocked, progress). The checks are the projection's own
(:mod:`mcp_server.pm.graph`, :mod:`mcp_server.pm.tables`), so a command
raises exactly where the projection would reject the event.

Queries read the tables after catching up. :meth:`PMService.project_status`
also reports stalls that arose while nothing happened: it appends the
``bottleneck.detected`` event itself, with the same id the projection would
give it, so the report appears once however it was noticed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from mcp_server import clock
from mcp_server.errors import InvalidEventError, NotFoundError, StoreLockedError
from mcp_server.events import make_event
from mcp_server.pm import tables
from mcp_server.pm.errors import DuplicateTitleError, TaskGraphError
from mcp_server.pm.events import parse_payload
from mcp_server.pm.projection import (
    SOURCE,
    PMProjection,
    bottleneck_event,
    new_findings,
    people_names,
    percent,
    progress_counts,
)
from mcp_server.pm.results import (
    BlockedTaskOut,
    BottleneckOut,
    CodeChangeOut,
    DependencyOut,
    EntityLinkOut,
    EntityOut,
    InProgressOut,
    ProgressOut,
    ProjectListOut,
    ProjectOut,
    ProjectStatusOut,
    TaskChangeOut,
    TaskDetailOut,
    TaskOut,
    TaskRef,
    TimelineEntryOut,
)
from mcp_server.pm.tables import ProjectRow, TaskRow
from mcp_server.store.base import EventFilter, StoredEvent

if TYPE_CHECKING:
    from mcp_server.runtime import Runtime

__all__ = ["MAX_CODE_CHANGES", "MAX_DEPENDENCIES", "MAX_LISTED", "MAX_TIMELINE", "PMService"]

logger = logging.getLogger(__name__)

MAX_LISTED = 50
"""Tasks or bottlenecks per list in a status result, which keeps it to a few thousand tokens."""

MAX_DEPENDENCIES = 200
"""Dependency edges listed in a status result."""

MAX_CODE_CHANGES = 10
"""Recent code changes listed in a status result."""

MAX_TIMELINE = 100
"""Timeline entries listed for one task."""

MAX_COMMAND_ATTEMPTS = 20
"""Times a command retries when project-management events keep arriving between its catch-up and its check."""

Build = Callable[[sqlite3.Connection], list[dict[str, Any]]]


def _graph() -> Any:
    # networkx takes about 100 ms to import; only commands and queries that need graph work pay for it.
    from mcp_server.pm import graph

    return graph


def _payload(event_type: str, fields: dict[str, Any]) -> dict[str, Any]:
    return parse_payload(event_type, fields).model_dump(mode="json")


def _as_cause(wire: dict[str, Any]) -> StoredEvent:
    """Return an event not yet stored in the form ``make_event(cause=...)`` accepts."""
    return StoredEvent(0, wire["id"], wire["type"], wire["timestamp"], wire["source"], wire["payload"], wire["metadata"])


def _names(values: Iterable[str], what: str) -> list[str]:
    cleaned = [value.strip() for value in values]
    if any(not value for value in cleaned):
        raise InvalidEventError(f"empty {what} name in {list(values)!r}; remove it")
    return list(dict.fromkeys(cleaned))


def _capped(items: list[Any], cap: int) -> tuple[list[Any], bool]:
    return items[:cap], len(items) > cap


class PMService:
    """Commands and queries over one project's project-management state."""

    def __init__(self, runtime: Runtime, projection: PMProjection | None = None) -> None:
        self.runtime = runtime
        self.projection = projection or PMProjection()

    # -- running commands --------------------------------------------------------------

    def _command(self, build: Build) -> list[StoredEvent]:
        """Check and append the events ``build`` returns, once the projection has applied every earlier one.

        Raises:
            StoreLockedError: events kept arriving for :data:`MAX_COMMAND_ATTEMPTS` rounds.
        """
        log = self.runtime.log
        for _ in range(MAX_COMMAND_ATTEMPTS):
            self.runtime.catch_up()
            with log.transaction() as connection:
                if self._behind(connection):
                    continue
                stored = log.append_in(connection, build(connection))
            self.runtime.catch_up()
            self._raise_if_rejected(stored)
            return stored
        raise StoreLockedError(
            f"project-management events kept arriving while this command waited ({MAX_COMMAND_ATTEMPTS} rounds); retry"
        )

    def _behind(self, connection: sqlite3.Connection) -> bool:
        checkpoint = self.runtime.log.checkpoint(self.projection.name, connection)
        return bool(self.runtime.log.read_after(checkpoint, limit=1, types=self.projection.subscriptions))

    def _raise_if_rejected(self, stored: list[StoredEvent]) -> None:
        for event in stored:
            row = self._connection.execute("SELECT error FROM pm_rejections WHERE event_id = ?", (event.id,)).fetchone()
            if row is not None:
                raise TaskGraphError(f"the {event.type} event {event.id} was rejected: {row[0]}")

    @property
    def _connection(self) -> sqlite3.Connection:
        return self.runtime.log.connection

    @staticmethod
    def _event(event_type: str, fields: dict[str, Any], source: str, session_id: str | None,
               cause: dict[str, Any] | None = None) -> dict[str, Any]:
        return make_event(event_type, _payload(event_type, fields), source=source, session_id=session_id,
                          cause=_as_cause(cause) if cause is not None else None)

    # -- commands ----------------------------------------------------------------------

    def create_project(
        self, title: str, *, description: str = "", source: str = "cli", session_id: str | None = None
    ) -> ProjectOut:
        """Create a project; its id is a slug of the title.

        Raises:
            DuplicateTitleError: a project with that title (ignoring case) exists.
            InvalidEventError: the title is empty or too long.
        """
        title = title.strip()

        def build(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            taken = connection.execute("SELECT id FROM pm_projects WHERE lower(title) = lower(?)", (title,)).fetchone()
            if taken is not None:
                raise DuplicateTitleError(
                    f"a project titled {title!r} already exists (id {taken[0]!r}); add tasks to it or pick another title"
                )
            project_id = tables.allocate_id(connection, "pm_projects", tables.slugify(title, "project"))
            fields = {"project_id": project_id, "title": title, "description": description}
            return [self._event("project.created", fields, source, session_id)]

        [created] = self._command(build)
        return self._project_out(self._connection, tables.find_project(self._connection, created.payload["project_id"]))

    def add_task(
        self,
        project: str,
        title: str,
        *,
        depends_on: Sequence[str] = (),
        touchpoints: Sequence[str] = (),
        estimate: float | None = None,
        assignee: str | None = None,
        description: str = "",
        source: str = "cli",
        session_id: str | None = None,
    ) -> TaskChangeOut:
        """Add a task to ``project`` (id or title), optionally with dependencies, touchpoints and an assignee.

        Raises:
            NotFoundError: the project or a dependency does not exist.
            DuplicateTitleError: the project already has a task with that title.
            InvalidEventError: a field is invalid.
        """
        title = title.strip()

        def build(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            owner = tables.find_project(connection, project)
            self._check_title_free(connection, owner.id, title)
            dependencies = list(dict.fromkeys(
                tables.find_task(connection, reference, owner.id).id for reference in _names(depends_on, "dependency")
            ))
            task_id = tables.allocate_id(connection, "pm_tasks", tables.slugify(title, "task"))
            fields = {"task_id": task_id, "project_id": owner.id, "title": title, "description": description,
                      "estimate": estimate, "depends_on": dependencies,
                      "touchpoints": _names(touchpoints, "touchpoint")}
            created = self._event("task.created", fields, source, session_id)
            events = [created]
            if assignee is not None:
                events.append(self._assignment(connection, task_id, assignee, source, session_id, created))
            return events

        stored = self._command(build)
        return self._task_change(stored[0].payload["task_id"], stored)

    def update_task(
        self,
        task: str,
        *,
        project: str | None = None,
        depends_on: Sequence[str] = (),
        remove_depends_on: Sequence[str] = (),
        touchpoints: Sequence[str] = (),
        estimate: float | None = None,
        title: str | None = None,
        source: str = "cli",
        session_id: str | None = None,
    ) -> TaskChangeOut:
        """Add or remove dependencies of a task, link more touchpoints, or change its estimate or title.

        Raises:
            DependencyCycleError: a new dependency names the task itself or would close a cycle.
            NotFoundError: the task, or a dependency to add or remove, does not exist.
            InvalidEventError: nothing to change was given, or a field is invalid.
        """
        if not (depends_on or remove_depends_on or touchpoints or estimate is not None or title is not None):
            raise InvalidEventError(
                "nothing to update: give depends_on, remove_depends_on, touchpoints, estimate or title"
            )

        def build(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            target = self._find_task(connection, task, project)
            events = [self._event("task.dependency.removed", {"task_id": target.id, "depends_on": dependency}, source,
                                  session_id) for dependency in self._removals(connection, target, remove_depends_on)]
            removed = [(target.id, event["payload"]["depends_on"]) for event in events]
            events += self._additions(connection, target, depends_on, removed, source, session_id)
            if touchpoints or estimate is not None or title is not None:
                if title is not None and title.strip().casefold() != target.title.casefold():
                    self._check_title_free(connection, target.project_id, title.strip())
                fields = {"task_id": target.id, "title": title.strip() if title is not None else None,
                          "estimate": estimate, "add_touchpoints": _names(touchpoints, "touchpoint")}
                events.append(self._event("task.updated", fields, source, session_id))
            return events

        stored = self._command(build)
        task_id = stored[0].payload["task_id"] if stored else self._find_task(self._connection, task, project).id
        return self._task_change(task_id, stored)

    def _removals(self, connection: sqlite3.Connection, target: TaskRow, references: Sequence[str]) -> list[str]:
        current = tables.task_dependencies(connection, target.id)
        removals: list[str] = []
        for reference in _names(references, "dependency"):
            # A dependency on a task that no longer exists can only be named by its id.
            dependency_id = reference if reference in current else tables.find_task(connection, reference).id
            if dependency_id not in current:
                raise NotFoundError(f"task {target.id!r} does not depend on {reference!r}; its dependencies: "
                                    f"{', '.join(current) or 'none'}")
            removals.append(dependency_id)
        return list(dict.fromkeys(removals))

    def _additions(
        self, connection: sqlite3.Connection, target: TaskRow, references: Sequence[str],
        removed: list[tuple[str, str]], source: str, session_id: str | None,
    ) -> list[dict[str, Any]]:
        current = set(tables.task_dependencies(connection, target.id)) - {dependency for _, dependency in removed}
        pending: list[tuple[str, str]] = []
        events: list[dict[str, Any]] = []
        for reference in _names(references, "dependency"):
            dependency = tables.find_task(connection, reference, target.project_id)
            if dependency.id in current:
                continue
            _graph().check_dependency(connection, target, dependency, pending, removed)
            pending.append((target.id, dependency.id))
            current.add(dependency.id)
            fields = {"task_id": target.id, "depends_on": dependency.id}
            events.append(self._event("task.dependency.added", fields, source, session_id))
        return events

    def assign_task(
        self, task: str, assignee: str, *, project: str | None = None, source: str = "cli",
        session_id: str | None = None,
    ) -> TaskChangeOut:
        """Assign an open task to a person or agent, named freely (``alice``, ``claude``).

        Raises:
            NotFoundError: the task does not exist.
            TaskGraphError: the task is already completed, or a task it depends on is still open.
        """
        def build(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            target = self._find_task(connection, task, project)
            return [self._assignment(connection, target.id, assignee, source, session_id, None)]

        stored = self._command(build)
        return self._task_change(stored[0].payload["task_id"], stored)

    def _assignment(
        self, connection: sqlite3.Connection, task_id: str, assignee: str, source: str, session_id: str | None,
        cause: dict[str, Any] | None,
    ) -> dict[str, Any]:
        target = tables.get_task(connection, task_id)
        if target is not None and not target.is_open:
            raise TaskGraphError(f"cannot assign task {target.title!r} ({target.id}): it is already completed")
        name = assignee.strip()
        known = connection.execute("SELECT id FROM pm_people WHERE lower(name) = lower(?)", (name,)).fetchone()
        person_id = str(known[0]) if known else tables.allocate_id(connection, "pm_people",
                                                                   tables.slugify(name, "person"))
        fields = {"task_id": task_id, "person_id": person_id, "assignee": name}
        return self._event("task.assigned", fields, source, session_id, cause)

    def complete_task(
        self, task: str, *, project: str | None = None, source: str = "cli", session_id: str | None = None
    ) -> TaskChangeOut:
        """Mark a task completed; the result lists the tasks that became ready.

        Raises:
            NotFoundError: the task does not exist.
            TaskGraphError: the task is already completed.
        """
        def build(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            target = self._find_task(connection, task, project)
            if not target.is_open:
                raise TaskGraphError(f"task {target.title!r} ({target.id}) is already completed")
            dependencies = tables.tasks_by_id(connection, set(tables.task_dependencies(connection, target.id)))
            blockers = sorted(row.title for row in dependencies.values() if row.is_open)
            if blockers:
                raise TaskGraphError(
                    f"task {target.title!r} ({target.id}) is blocked by open tasks: {', '.join(map(repr, blockers))}; "
                    "complete those first, or remove the dependency with update_task (remove_depends_on; "
                    "'eventsync pm update --remove-dependency' on the command line)"
                )
            return [self._event("task.completed", {"task_id": target.id}, source, session_id)]

        stored = self._command(build)
        return self._task_change(stored[0].payload["task_id"], stored)

    @staticmethod
    def _find_task(connection: sqlite3.Connection, task: str, project: str | None) -> TaskRow:
        project_id = tables.find_project(connection, project).id if project is not None else None
        return tables.find_task(connection, task, project_id)

    @staticmethod
    def _check_title_free(connection: sqlite3.Connection, project_id: str, title: str) -> None:
        taken = connection.execute(
            "SELECT id FROM pm_tasks WHERE project_id = ? AND lower(title) = lower(?)", (project_id, title)
        ).fetchone()
        if taken is not None:
            raise DuplicateTitleError(
                f"project {project_id!r} already has a task titled {title!r} (id {taken[0]!r}); "
                "update that task or pick another title"
            )

    # -- generic entities --------------------------------------------------------------

    def create_entity(
        self, kind: str, attributes: dict[str, Any] | None = None, links: Sequence[tuple[str, str]] = (), *,
        source: str = "cli", session_id: str | None = None,
    ) -> EntityOut:
        """Create a graph entity of ``kind`` with ``attributes`` and ``(relation, node)`` links.

        Its id is a slug of its ``name`` or ``title`` attribute, else of ``kind``.

        Raises:
            NotFoundError: a linked node does not exist.
            InvalidEventError: the kind, an attribute or a link is invalid.
        """
        attributes = dict(attributes or {})

        def build(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            label = attributes.get("name") or attributes.get("title") or kind
            entity_id = tables.allocate_id(connection, "pm_entities", tables.slugify(str(label), "entity"))
            fields = {"entity_id": entity_id, "kind": kind, "attributes": attributes,
                      "links": self._links(connection, links)}
            return [self._event("entity.created", fields, source, session_id)]

        [created] = self._command(build)
        return self.get_entity(created.payload["entity_id"])

    def update_entity(
        self, entity_id: str, attributes: dict[str, Any] | None = None,
        links: Sequence[tuple[str, str]] | None = None, *, source: str = "cli", session_id: str | None = None,
    ) -> EntityOut:
        """Merge ``attributes`` into an entity (a None value removes the key) and replace its links when given.

        Raises:
            NotFoundError: the entity or a linked node does not exist.
        """
        def build(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            self._require_entity(connection, entity_id)
            fields = {"entity_id": entity_id, "attributes": attributes or {},
                      "links": None if links is None else self._links(connection, links)}
            return [self._event("entity.updated", fields, source, session_id)]

        self._command(build)
        return self.get_entity(entity_id)

    def delete_entity(self, entity_id: str, *, source: str = "cli", session_id: str | None = None) -> None:
        """Delete an entity and every link from or to it.

        Raises:
            NotFoundError: the entity does not exist.
        """
        def build(connection: sqlite3.Connection) -> list[dict[str, Any]]:
            self._require_entity(connection, entity_id)
            return [self._event("entity.deleted", {"entity_id": entity_id}, source, session_id)]

        self._command(build)

    def get_entity(self, entity_id: str) -> EntityOut:
        """Return an entity with its links in both directions.

        Raises:
            NotFoundError: the entity does not exist.
        """
        self.runtime.catch_up()
        connection = self._connection
        kind, attributes = self._require_entity(connection, entity_id)
        node = f"entity:{entity_id}"
        outgoing = connection.execute(
            "SELECT relation, target FROM pm_links WHERE source = ? ORDER BY relation, target", (node,)
        ).fetchall()
        incoming = connection.execute(
            "SELECT relation, source FROM pm_links WHERE target = ? ORDER BY relation, source", (node,)
        ).fetchall()
        return EntityOut(
            id=entity_id, kind=kind, attributes=attributes,
            links=[EntityLinkOut(relation=str(relation), node=str(target)) for relation, target in outgoing],
            linked_from=[EntityLinkOut(relation=str(relation), node=str(source)) for relation, source in incoming],
        )

    @staticmethod
    def _require_entity(connection: sqlite3.Connection, entity_id: str) -> tuple[str, dict[str, Any]]:
        row = connection.execute("SELECT kind, attributes FROM pm_entities WHERE id = ?", (entity_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no entity with id {entity_id!r}; create it first with 'eventsync pm entity create'")
        return str(row[0]), json.loads(row[1])

    @staticmethod
    def _links(connection: sqlite3.Connection, links: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
        tables_by_kind = {"project": "pm_projects", "task": "pm_tasks", "person": "pm_people", "entity": "pm_entities"}
        checked: list[dict[str, str]] = []
        for relation, node in links:
            kind, _, node_id = node.partition(":")
            table = tables_by_kind.get(kind)
            if table is None or not node_id:
                raise InvalidEventError(
                    f"invalid link target {node!r}: use 'project:ID', 'task:ID', 'person:ID' or 'entity:ID'"
                )
            if connection.execute(f"SELECT 1 FROM {table} WHERE id = ?", (node_id,)).fetchone() is None:
                raise NotFoundError(f"cannot link to {node!r}: no {kind} with id {node_id!r}")
            checked.append({"relation": relation, "target": node})
        return checked

    # -- queries -----------------------------------------------------------------------

    def list_projects(self) -> ProjectListOut:
        """Return every project with its progress, oldest first."""
        self.runtime.catch_up()
        connection = self._connection
        ids = [str(row[0]) for row in connection.execute("SELECT id FROM pm_projects ORDER BY position, id")]
        return ProjectListOut(projects=[
            self._project_out(connection, tables.get_project(connection, project_id))  # type: ignore[arg-type]
            for project_id in ids
        ])

    def task_detail(self, task: str, *, project: str | None = None) -> TaskDetailOut:
        """Return a task with its timeline, newest first, code changes at its touchpoints included.

        Raises:
            NotFoundError: the task does not exist.
        """
        self.runtime.catch_up()
        connection = self._connection
        target = self._find_task(connection, task, project)
        rows = connection.execute(
            "SELECT kind, at, event_id, detail FROM pm_timeline WHERE task_id = ? ORDER BY position DESC, ref LIMIT ?",
            (target.id, MAX_TIMELINE),
        ).fetchall()
        timeline = [TimelineEntryOut(kind=str(kind), at=str(at), event_id=str(event_id), detail=json.loads(detail))
                    for kind, at, event_id, detail in rows]
        return TaskDetailOut(task=self._task_out(connection, target), timeline=timeline)

    def project_status(self, project: str, *, now: str | None = None) -> ProjectStatusOut:
        """Return the state of ``project`` (id or title), first reporting stalls that arose since the last event.

        Raises:
            NotFoundError: the project does not exist.
        """
        self.runtime.catch_up()
        project_id = tables.find_project(self._connection, project).id
        self._report_new_bottlenecks(project_id, now or clock.utc_timestamp())
        connection = self._connection
        owner = tables.get_project(connection, project_id)
        assert owner is not None  # projects are never deleted
        readiness = _graph().readiness(connection, project_id)
        titles = {task.id: task.title for task in tables.project_tasks(connection, project_id)}
        people = people_names(connection)

        ready, cut_ready = _capped([TaskRef(id=task.id, title=task.title) for task in readiness.ready], MAX_LISTED)
        in_progress, cut_progress = _capped([
            InProgressOut(id=task.id, title=task.title, assignee=people.get(task.assignee, task.assignee))
            for task in tables.project_tasks(connection, project_id) if task.is_open and task.assignee is not None
        ], MAX_LISTED)
        blocked, cut_blocked = _capped([
            BlockedTaskOut(id=item.task.id, title=item.task.title, in_cycle=item.in_cycle,
                           blocked_by=[TaskRef(id=b, title=titles.get(b, b)) for b in item.blockers])
            for item in readiness.blocked
        ], MAX_LISTED)
        dependencies, cut_dependencies = _capped(self._dependencies(connection, project_id), MAX_DEPENDENCIES)
        bottlenecks, cut_bottlenecks = _capped(self._bottlenecks(connection, project_id), MAX_LISTED)
        return ProjectStatusOut(
            project=self._project_out(connection, owner),
            ready=ready, in_progress=in_progress, blocked=blocked, dependencies=dependencies,
            bottlenecks=bottlenecks, cycles=readiness.cycles,
            warnings=self._warnings(connection, project_id, readiness.cycles, titles),
            recent_code_changes=self._code_changes(connection, project_id),
            truncated=cut_ready or cut_progress or cut_blocked or cut_dependencies or cut_bottlenecks,
        )

    def _report_new_bottlenecks(self, project_id: str, now: str) -> None:
        """Append ``bottleneck.detected`` for what time alone made a bottleneck since the projection last looked."""
        graph = _graph()
        log = self.runtime.log
        with log.transaction() as connection:
            if self._behind(connection):
                return
            project = graph.ProjectGraph.load(connection, project_id)
            findings = graph.find_bottlenecks(project, now, people_names(connection))
            events = [bottleneck_event(project_id, finding, episode, cause=None, source=SOURCE)
                      for finding, episode in new_findings(connection, project_id, findings)]
            stored = log.append_in(connection, events)
        if stored:
            logger.info("pm: %d new bottlenecks in %s found at status time", len(stored), project_id)
            self.runtime.catch_up()

    @staticmethod
    def _dependencies(connection: sqlite3.Connection, project_id: str) -> list[DependencyOut]:
        rows = connection.execute(
            "SELECT d.task_id, d.depends_on FROM pm_dependencies d JOIN pm_tasks t ON t.id = d.task_id "
            "WHERE t.project_id = ? ORDER BY t.position, d.created_at, d.depends_on", (project_id,),
        ).fetchall()
        return [DependencyOut(task=str(task), depends_on=str(dependency)) for task, dependency in rows]

    @staticmethod
    def _bottlenecks(connection: sqlite3.Connection, project_id: str) -> list[BottleneckOut]:
        rows = connection.execute(
            "SELECT kind, subject, reason, details, detected_at FROM pm_bottlenecks WHERE project_id = ? AND active = 1 "
            "ORDER BY detected_at, kind, subject", (project_id,),
        ).fetchall()
        return [BottleneckOut(kind=kind, subject=subject, reason=reason, numbers=json.loads(details),
                              detected_at=detected_at) for kind, subject, reason, details, detected_at in rows]

    @staticmethod
    def _warnings(
        connection: sqlite3.Connection, project_id: str, cycles: list[list[str]], titles: dict[str, str]
    ) -> list[str]:
        warnings = [
            f"dependency cycle {' → '.join(titles.get(task_id, task_id) for task_id in loop)} "
            f"(ids {' → '.join(loop)}): none of these tasks can become ready; remove one of these dependencies "
            "with update_task remove_depends_on ('eventsync pm update --remove-dependency' on the command line)"
            for loop in cycles
        ]
        rejected = connection.execute(
            "SELECT event_type, event_id, error FROM pm_rejections WHERE project_id = ? ORDER BY position DESC LIMIT 5",
            (project_id,),
        ).fetchall()
        warnings += [f"rejected {event_type} event {event_id}: {error}" for event_type, event_id, error in rejected]
        return warnings

    @staticmethod
    def _code_changes(connection: sqlite3.Connection, project_id: str) -> list[CodeChangeOut]:
        rows = connection.execute(
            "SELECT l.task_id, l.event_id, l.at, l.detail FROM pm_timeline l JOIN pm_tasks t ON t.id = l.task_id "
            "WHERE t.project_id = ? AND l.kind = 'code.changed' ORDER BY l.position DESC, l.ref LIMIT ?",
            (project_id, MAX_CODE_CHANGES),
        ).fetchall()
        changes: list[CodeChangeOut] = []
        for task_id, event_id, at, detail in rows:
            fields = json.loads(detail)
            changes.append(CodeChangeOut(task=task_id, touchpoint=fields["touchpoint"], path=fields["path"],
                                         change=fields["change"], event_id=event_id, at=at))
        return changes

    # -- building results --------------------------------------------------------------

    @staticmethod
    def _progress(connection: sqlite3.Connection, project_id: str) -> ProgressOut:
        completed, total = progress_counts(connection, project_id)
        return ProgressOut(completed=completed, total=total, percent=percent(completed, total))

    def _project_out(self, connection: sqlite3.Connection, project: ProjectRow) -> ProjectOut:
        return ProjectOut(id=project.id, title=project.title, description=project.description,
                          progress=self._progress(connection, project.id))

    @staticmethod
    def _task_out(connection: sqlite3.Connection, task: TaskRow) -> TaskOut:
        readiness = _graph().readiness(connection, task.project_id)
        blocked = next((item for item in readiness.blocked if item.task.id == task.id), None)
        return TaskOut(
            id=task.id, title=task.title, project=task.project_id,
            status="completed" if not task.is_open else "open",
            assignee=tables.person_name(connection, task.assignee), estimate=task.estimate,
            depends_on=tables.task_dependencies(connection, task.id),
            touchpoints=tables.task_touchpoints(connection, task.id),
            ready=any(ready.id == task.id for ready in readiness.ready),
            blocked_by=list(blocked.blockers) if blocked is not None else [],
        )

    def _task_change(self, task_id: str, stored: list[StoredEvent]) -> TaskChangeOut:
        connection = self._connection
        task = tables.get_task(connection, task_id)
        if task is None:
            raise NotFoundError(f"task {task_id!r} is missing after the command; run 'eventsync rebuild pm'")
        unblocked: list[TaskRef] = []
        for event in stored:
            page = self.runtime.log.query(
                EventFilter(types=("task.unblocked",), correlation_id=event.id), limit=100, descending=False
            )
            for derived in page.events:
                other = tables.get_task(connection, str(derived.payload["task_id"]))
                if other is not None:
                    unblocked.append(TaskRef(id=other.id, title=other.title))
        return TaskChangeOut(task=self._task_out(connection, task), progress=self._progress(connection, task.project_id),
                             unblocked=unblocked, event_ids=[event.id for event in stored])
