"""The project-management tables in the log's database, and the reads every part shares.

The :class:`~mcp_server.pm.projection.PMProjection` owns these tables and is
their only writer (apart from a rebuild, which drops and refills them). The
commands and queries in :mod:`mcp_server.pm.service` read them through the
functions here: rows as :class:`TaskRow`, id allocation, and resolving a
title or id given by a person or an agent to one project or task.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from mcp_server.errors import NotFoundError
from mcp_server.pm.errors import AmbiguousReferenceError

__all__ = [
    "TABLES",
    "ProjectRow",
    "TaskRow",
    "allocate_id",
    "create_tables",
    "drop_tables",
    "find_project",
    "find_task",
    "get_project",
    "get_task",
    "person_name",
    "project_tasks",
    "slugify",
    "task_dependencies",
    "task_touchpoints",
    "tasks_by_id",
]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS pm_projects (
        id TEXT PRIMARY KEY, title TEXT NOT NULL, description TEXT NOT NULL,
        created_at TEXT NOT NULL, position INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS pm_tasks (
        id TEXT PRIMARY KEY, project_id TEXT NOT NULL, title TEXT NOT NULL, description TEXT NOT NULL,
        status TEXT NOT NULL, estimate REAL, assignee TEXT, created_at TEXT NOT NULL,
        assigned_at TEXT, completed_at TEXT, last_activity_at TEXT NOT NULL, position INTEGER NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS pm_tasks_by_project ON pm_tasks (project_id, position)",
    "CREATE INDEX IF NOT EXISTS pm_tasks_by_activity ON pm_tasks (status, last_activity_at)",
    (
        "CREATE TABLE IF NOT EXISTS pm_people (id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at TEXT NOT NULL)"
        " WITHOUT ROWID"
    ),
    """CREATE TABLE IF NOT EXISTS pm_dependencies (
        task_id TEXT NOT NULL, depends_on TEXT NOT NULL, created_at TEXT NOT NULL, event_id TEXT NOT NULL,
        PRIMARY KEY (task_id, depends_on)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS pm_dependencies_by_target ON pm_dependencies (depends_on)",
    (
        "CREATE TABLE IF NOT EXISTS pm_task_touchpoints (task_id TEXT NOT NULL, touchpoint TEXT NOT NULL,"
        " PRIMARY KEY (task_id, touchpoint)) WITHOUT ROWID"
    ),
    "CREATE INDEX IF NOT EXISTS pm_task_touchpoints_by_name ON pm_task_touchpoints (touchpoint)",
    (
        "CREATE TABLE IF NOT EXISTS pm_touchpoint_paths (path TEXT NOT NULL, name TEXT NOT NULL,"
        " PRIMARY KEY (path, name)) WITHOUT ROWID"
    ),
    """CREATE TABLE IF NOT EXISTS pm_timeline (
        task_id TEXT NOT NULL, ref TEXT NOT NULL, position INTEGER NOT NULL, event_id TEXT NOT NULL,
        kind TEXT NOT NULL, at TEXT NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (task_id, ref)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS pm_timeline_by_kind ON pm_timeline (kind, position)",
    """CREATE TABLE IF NOT EXISTS pm_entities (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, attributes TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, position INTEGER NOT NULL
    ) WITHOUT ROWID""",
    (
        "CREATE TABLE IF NOT EXISTS pm_links (source TEXT NOT NULL, relation TEXT NOT NULL, target TEXT NOT NULL,"
        " PRIMARY KEY (source, relation, target)) WITHOUT ROWID"
    ),
    "CREATE INDEX IF NOT EXISTS pm_links_by_target ON pm_links (target)",
    """CREATE TABLE IF NOT EXISTS pm_bottlenecks (
        kind TEXT NOT NULL, subject TEXT NOT NULL, project_id TEXT NOT NULL, active INTEGER NOT NULL,
        episode INTEGER NOT NULL, reason TEXT NOT NULL, details TEXT NOT NULL, detected_at TEXT NOT NULL,
        event_id TEXT NOT NULL, PRIMARY KEY (kind, subject)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS pm_rejections (
        event_id TEXT PRIMARY KEY, position INTEGER NOT NULL, event_type TEXT NOT NULL,
        project_id TEXT, error TEXT NOT NULL
    ) WITHOUT ROWID""",
)

TABLES = (
    "pm_projects", "pm_tasks", "pm_people", "pm_dependencies", "pm_task_touchpoints", "pm_touchpoint_paths",
    "pm_timeline", "pm_entities", "pm_links", "pm_bottlenecks", "pm_rejections",
)
"""Every table the projection owns, in the order a rebuild comparison reads them."""

MAX_SLUG_LENGTH = 48
"""Maximum length of an id made from a title; long titles keep their first words."""

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class ProjectRow:
    """One project."""

    id: str
    title: str
    description: str
    created_at: str


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One task, without its dependencies and touchpoints."""

    id: str
    project_id: str
    title: str
    status: str
    estimate: float | None
    assignee: str | None
    assigned_at: str | None
    completed_at: str | None
    last_activity_at: str
    position: int

    @property
    def is_open(self) -> bool:
        """Whether the task still has to be done."""
        return self.status != "completed"


_TASK_COLUMNS = "id, project_id, title, status, estimate, assignee, assigned_at, completed_at, last_activity_at, position"


def create_tables(connection: sqlite3.Connection) -> None:
    """Create every project-management table that does not exist yet."""
    for statement in _SCHEMA:
        connection.execute(statement)


def drop_tables(connection: sqlite3.Connection) -> None:
    """Drop every project-management table."""
    for table in TABLES:
        connection.execute(f"DROP TABLE IF EXISTS {table}")


def slugify(text: str, fallback: str) -> str:
    """Return ``text`` as lower-case words joined by hyphens, or ``fallback`` when no letter or digit is left."""
    slug = _NOT_SLUG.sub("-", text.casefold()).strip("-")[:MAX_SLUG_LENGTH].rstrip("-")
    return slug or fallback


def allocate_id(connection: sqlite3.Connection, table: str, base: str) -> str:
    """Return ``base``, or ``base-N`` with the smallest free N above those taken, as a new id in ``table``."""
    taken = {
        str(row[0])
        for row in connection.execute(f"SELECT id FROM {table} WHERE id = ? OR id GLOB ?", (base, f"{base}-[0-9]*"))
    }
    if base not in taken:
        return base
    suffixes = [int(value[len(base) + 1:]) for value in taken if value[len(base) + 1:].isdigit()]
    return f"{base}-{max([1, *suffixes]) + 1}"


def _task(row: tuple[object, ...]) -> TaskRow:
    return TaskRow(
        id=str(row[0]), project_id=str(row[1]), title=str(row[2]), status=str(row[3]),
        estimate=float(row[4]) if row[4] is not None else None,  # type: ignore[arg-type]
        assignee=str(row[5]) if row[5] is not None else None,
        assigned_at=str(row[6]) if row[6] is not None else None,
        completed_at=str(row[7]) if row[7] is not None else None,
        last_activity_at=str(row[8]), position=int(row[9]),  # type: ignore[call-overload]
    )


def get_task(connection: sqlite3.Connection, task_id: str) -> TaskRow | None:
    """Return the task with id ``task_id``, or None."""
    row = connection.execute(f"SELECT {_TASK_COLUMNS} FROM pm_tasks WHERE id = ?", (task_id,)).fetchone()
    return _task(row) if row else None


def get_project(connection: sqlite3.Connection, project_id: str) -> ProjectRow | None:
    """Return the project with id ``project_id``, or None."""
    row = connection.execute(
        "SELECT id, title, description, created_at FROM pm_projects WHERE id = ?", (project_id,)
    ).fetchone()
    return ProjectRow(*(str(value) for value in row)) if row else None


def project_tasks(connection: sqlite3.Connection, project_id: str) -> list[TaskRow]:
    """Return the project's tasks in creation order."""
    rows = connection.execute(
        f"SELECT {_TASK_COLUMNS} FROM pm_tasks WHERE project_id = ? ORDER BY position, id", (project_id,)
    ).fetchall()
    return [_task(row) for row in rows]


def tasks_by_id(connection: sqlite3.Connection, task_ids: set[str]) -> dict[str, TaskRow]:
    """Return the tasks among ``task_ids`` that exist, by id."""
    found: dict[str, TaskRow] = {}
    for task_id in sorted(task_ids):
        task = get_task(connection, task_id)
        if task is not None:
            found[task_id] = task
    return found


def task_dependencies(connection: sqlite3.Connection, task_id: str) -> list[str]:
    """Return the ids ``task_id`` depends on, in the order they were added."""
    rows = connection.execute(
        "SELECT depends_on FROM pm_dependencies WHERE task_id = ? ORDER BY created_at, depends_on", (task_id,)
    )
    return [str(row[0]) for row in rows]


def task_touchpoints(connection: sqlite3.Connection, task_id: str) -> list[str]:
    """Return the touchpoint names linked to ``task_id``, sorted."""
    rows = connection.execute(
        "SELECT touchpoint FROM pm_task_touchpoints WHERE task_id = ? ORDER BY touchpoint", (task_id,)
    )
    return [str(row[0]) for row in rows]


def person_name(connection: sqlite3.Connection, person_id: str | None) -> str | None:
    """Return the display name of ``person_id``, or the id itself when the person row is missing."""
    if person_id is None:
        return None
    row = connection.execute("SELECT name FROM pm_people WHERE id = ?", (person_id,)).fetchone()
    return str(row[0]) if row else person_id


def find_project(connection: sqlite3.Connection, reference: str) -> ProjectRow:
    """Return the project whose id or title is ``reference`` (exact first, then ignoring case).

    Raises:
        NotFoundError: no project matches.
        AmbiguousReferenceError: the title matches several projects.
    """
    project = get_project(connection, reference)
    if project is not None:
        return project
    for clause in ("title = ?", "lower(title) = lower(?) OR lower(id) = lower(?)"):
        parameters = (reference,) if clause == "title = ?" else (reference, reference)
        ids = [str(row[0]) for row in connection.execute(f"SELECT id FROM pm_projects WHERE {clause} ORDER BY id",
                                                          parameters)]
        if len(ids) > 1:
            raise AmbiguousReferenceError(
                f"project {reference!r} matches {len(ids)} projects ({', '.join(ids)}); pass the project id"
            )
        if ids:
            return get_project(connection, ids[0])  # type: ignore[return-value]
    raise NotFoundError(
        f"no project with id or title {reference!r}; create it first with create_project "
        "('eventsync pm create-project' on the command line)"
    )


def find_task(connection: sqlite3.Connection, reference: str, project_id: str | None = None) -> TaskRow:
    """Return the task whose id or title is ``reference``, within ``project_id`` when given.

    An exact id wins; then an exact title; then an id or title ignoring case.

    Raises:
        NotFoundError: no task matches.
        AmbiguousReferenceError: the title matches several tasks.
    """
    task = get_task(connection, reference)
    if task is not None and (project_id is None or task.project_id == project_id):
        return task
    scope, scope_parameters = ("AND project_id = ?", (project_id,)) if project_id is not None else ("", ())
    for clause, parameters in (
        ("title = ?", (reference,)),
        ("(lower(title) = lower(?) OR lower(id) = lower(?))", (reference, reference)),
    ):
        rows = connection.execute(
            f"SELECT id, project_id FROM pm_tasks WHERE {clause} {scope} ORDER BY position, id",
            (*parameters, *scope_parameters),
        ).fetchall()
        if len(rows) > 1:
            listed = ", ".join(f"{row[0]} in {row[1]}" for row in rows[:10])
            raise AmbiguousReferenceError(
                f"task {reference!r} matches {len(rows)} tasks ({listed}); pass the task id or the project"
            )
        if rows:
            return get_task(connection, str(rows[0][0]))  # type: ignore[return-value]
    where = f" in project {project_id!r}" if project_id is not None else ""
    raise NotFoundError(
        f"no task with id or title {reference!r}{where}; add it first with add_task ('eventsync pm add' on the command line)"
    )
