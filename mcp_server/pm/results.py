"""What the project-management commands and queries return, for the MCP tools and ``eventsync pm --json`` alike.

These pydantic models are the tools' structured output. The CLI prints the
same ``model_dump`` as JSON, so a person and an agent get the same fields.
Lists are capped (see :mod:`mcp_server.pm.service`), and ``truncated`` is true when one was cut.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = [
    "BlockedTaskOut",
    "BottleneckOut",
    "CodeChangeOut",
    "DependencyOut",
    "EntityLinkOut",
    "EntityOut",
    "InProgressOut",
    "ProgressOut",
    "ProjectListOut",
    "ProjectOut",
    "ProjectStatusOut",
    "TaskChangeOut",
    "TaskDetailOut",
    "TaskOut",
    "TaskRef",
    "TimelineEntryOut",
]


class TaskRef(BaseModel):
    """A task named by id and title."""

    id: str
    title: str


class ProgressOut(BaseModel):
    """Completed share of a project."""

    completed: int
    total: int
    percent: float


class ProjectOut(BaseModel):
    """One project and its progress."""

    id: str
    title: str
    description: str
    progress: ProgressOut


class ProjectListOut(BaseModel):
    """Every project, oldest first."""

    projects: list[ProjectOut]


class TaskOut(BaseModel):
    """One task in its current state."""

    id: str
    title: str
    project: str = Field(description="Project id.")
    status: Literal["open", "completed"]
    assignee: str | None = Field(description="Display name of the person or agent working on it.")
    estimate: float | None = Field(description="Estimated hours.")
    depends_on: list[str] = Field(description="Ids of the tasks it waits for.")
    touchpoints: list[str]
    ready: bool = Field(description="Open, every dependency completed, and on no dependency cycle.")
    blocked_by: list[str] = Field(description="Ids of open dependencies.")


class TaskChangeOut(BaseModel):
    """A task after a command changed it."""

    task: TaskOut
    progress: ProgressOut
    unblocked: list[TaskRef] = Field(default_factory=list, description="Tasks this change made ready.")
    event_ids: list[str] = Field(description="Events the command appended to the log.")


class InProgressOut(BaseModel):
    """An open task someone has taken."""

    id: str
    title: str
    assignee: str


class BlockedTaskOut(BaseModel):
    """An open task that cannot start yet."""

    id: str
    title: str
    blocked_by: list[TaskRef]
    in_cycle: bool = Field(description="True when the task is on a dependency cycle and can never start as it is.")


class DependencyOut(BaseModel):
    """``task`` waits for ``depends_on``."""

    task: str
    depends_on: str


class BottleneckOut(BaseModel):
    """A task or person holding up much of the remaining work."""

    kind: Literal["blocking", "critical_path_owner", "stalled"]
    subject: str = Field(description="Task id, or person id for critical_path_owner.")
    reason: str
    numbers: dict[str, float]
    detected_at: str


class CodeChangeOut(BaseModel):
    """A change in the code at a touchpoint a task names."""

    task: str
    touchpoint: str
    path: str
    change: Literal["edited", "deleted", "added", "removed", "moved"]
    event_id: str
    at: str


class ProjectStatusOut(BaseModel):
    """The state of a project: progress, what can start, what waits and why, and recent code changes."""

    project: ProjectOut
    ready: list[TaskRef] = Field(description="Open tasks that can start now, oldest first.")
    in_progress: list[InProgressOut]
    blocked: list[BlockedTaskOut]
    dependencies: list[DependencyOut]
    bottlenecks: list[BottleneckOut]
    cycles: list[list[str]] = Field(description="Dependency loops of task ids, the first repeated at the end.")
    warnings: list[str]
    recent_code_changes: list[CodeChangeOut] = Field(description="Latest code changes at touchpoints its tasks name.")
    truncated: bool = Field(description="True when a list was cut to its cap.")


class TimelineEntryOut(BaseModel):
    """One thing that happened to a task."""

    kind: str
    at: str
    event_id: str
    detail: dict[str, Any]


class TaskDetailOut(BaseModel):
    """A task with its timeline, newest first."""

    task: TaskOut
    timeline: list[TimelineEntryOut]


class EntityLinkOut(BaseModel):
    """An edge between an entity and another node of the graph (``kind:id``)."""

    relation: str
    node: str


class EntityOut(BaseModel):
    """A generic graph entity with its links."""

    id: str
    kind: str
    attributes: dict[str, Any]
    links: list[EntityLinkOut] = Field(description="Edges from this entity.")
    linked_from: list[EntityLinkOut] = Field(description="Edges from other entities to this one.")
