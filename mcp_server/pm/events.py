"""Payload models of the events the project-management module emits and consumes.

Every ``project.*``, ``task.*``, ``entity.*`` and ``bottleneck.detected``
event carries a payload described here. :data:`PAYLOAD_MODELS` maps each type
to its model, for the schema registry and for :func:`parse_payload`, which the
projection and the commands share. Each model states its ``schema_version``
as a class attribute; a change that breaks old payloads raises it. Unknown
fields are ignored, so producers may add fields without breaking this module.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mcp_server.errors import InvalidEventError

__all__ = [
    "BOTTLENECK_KINDS",
    "PAYLOAD_MODELS",
    "BottleneckDetected",
    "EntityCreated",
    "EntityDeleted",
    "EntityLink",
    "EntityUpdated",
    "PMPayload",
    "ProjectCreated",
    "ProjectProgressUpdated",
    "TaskAssigned",
    "TaskCompleted",
    "TaskCreated",
    "TaskDependencyAdded",
    "TaskDependencyRemoved",
    "TaskUnblocked",
    "TaskUpdated",
    "parse_payload",
]

Identifier = Field(min_length=1, max_length=120)
Title = Field(min_length=1, max_length=200)

BOTTLENECK_KINDS = ("blocking", "critical_path_owner", "stalled")
"""Kinds of ``bottleneck.detected``: a task holding up many others, a person with too much of the critical path, a stalled task."""

ENTITY_TARGET_PATTERN = r"^(project|task|person|entity):[^\s:][^\s]*$"
"""Graph node reference ``kind:id``, for example ``task:write-api``."""


class PMPayload(BaseModel):
    """Base of every payload model here: ignores unknown fields, never changes after parsing."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: ClassVar[int] = 1


class ProjectCreated(PMPayload):
    """``project.created``: a project that tasks belong to."""

    project_id: str = Identifier
    title: str = Title
    description: str = Field(default="", max_length=4000)


class TaskCreated(PMPayload):
    """``task.created``: a task with its initial dependencies and linked touchpoints."""

    task_id: str = Identifier
    project_id: str = Identifier
    title: str = Title
    description: str = Field(default="", max_length=4000)
    estimate: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Hours of work; the critical path sums them."
    )
    depends_on: list[str] = Field(default_factory=list, description="Ids of tasks that must be completed first.")
    touchpoints: list[str] = Field(default_factory=list, description="Names of @touchpoint annotations the task changes.")


class TaskUpdated(PMPayload):
    """``task.updated``: a new title or estimate, or more linked touchpoints."""

    task_id: str = Identifier
    title: str | None = Field(default=None, min_length=1, max_length=200)
    estimate: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    add_touchpoints: list[str] = Field(default_factory=list)


class TaskDependencyAdded(PMPayload):
    """``task.dependency.added``: ``task_id`` cannot start before ``depends_on`` is completed."""

    task_id: str = Identifier
    depends_on: str = Identifier


class TaskDependencyRemoved(PMPayload):
    """``task.dependency.removed``: ``task_id`` no longer waits for ``depends_on``."""

    task_id: str = Identifier
    depends_on: str = Identifier


class TaskAssigned(PMPayload):
    """``task.assigned``: a person or agent took the task."""

    task_id: str = Identifier
    person_id: str = Identifier
    assignee: str = Field(min_length=1, max_length=200, description="The person's display name.")


class TaskCompleted(PMPayload):
    """``task.completed``: the task is done."""

    task_id: str = Identifier


class TaskUnblocked(PMPayload):
    """``task.unblocked``: the task's last open dependency was completed or removed."""

    task_id: str = Identifier
    project_id: str = Identifier
    unblocked_by: str = Field(min_length=1, max_length=120, description="The task completed or the dependency removed.")


class ProjectProgressUpdated(PMPayload):
    """``project.progress.updated``: the project's completed share changed."""

    project_id: str = Identifier
    completed: int = Field(ge=0)
    total: int = Field(ge=0)
    percent: float = Field(ge=0, le=100)


class BottleneckDetected(PMPayload):
    """``bottleneck.detected``: a task or person holds up much of the remaining work."""

    kind: Literal["blocking", "critical_path_owner", "stalled"]
    subject: str = Field(min_length=1, max_length=120, description="Task id, or person id for critical_path_owner.")
    project_id: str = Identifier
    reason: str = Field(min_length=1, max_length=1000)
    numbers: dict[str, float] = Field(default_factory=dict)
    episode: int = Field(default=1, ge=1, description="How many times this bottleneck has arisen; part of its id.")


class EntityLink(PMPayload):
    """One edge from an entity to another node of the graph."""

    relation: str = Field(min_length=1, max_length=80)
    target: str = Field(pattern=ENTITY_TARGET_PATTERN, max_length=200)


def _finite_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Reject NaN and infinite numbers anywhere in ``attributes``: JSON has no form for them."""
    pending: list[tuple[str, Any]] = list(attributes.items())
    while pending:
        key, value = pending.pop()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"attribute {key!r} is {value!r}; give a finite number, or quote the value to store text")
        if isinstance(value, dict):
            pending.extend((f"{key}.{inner}", item) for inner, item in value.items())
        elif isinstance(value, list):
            pending.extend((f"{key}[{index}]", item) for index, item in enumerate(value))
    return attributes


class EntityCreated(PMPayload):
    """``entity.created``: a generic node of the project graph, such as a milestone or a decision."""

    entity_id: str = Identifier
    kind: str = Field(min_length=1, max_length=80)
    attributes: dict[str, Any] = Field(default_factory=dict)
    links: list[EntityLink] = Field(default_factory=list)

    _check_attributes = field_validator("attributes")(_finite_attributes)


class EntityUpdated(PMPayload):
    """``entity.updated``: attributes merged into the entity (a null value removes a key); links replaced when given."""

    entity_id: str = Identifier
    attributes: dict[str, Any] = Field(default_factory=dict)
    links: list[EntityLink] | None = None

    _check_attributes = field_validator("attributes")(_finite_attributes)


class EntityDeleted(PMPayload):
    """``entity.deleted``: the entity and its links are gone."""

    entity_id: str = Identifier


PAYLOAD_MODELS: dict[str, type[PMPayload]] = {
    "project.created": ProjectCreated,
    "task.created": TaskCreated,
    "task.updated": TaskUpdated,
    "task.dependency.added": TaskDependencyAdded,
    "task.dependency.removed": TaskDependencyRemoved,
    "task.assigned": TaskAssigned,
    "task.completed": TaskCompleted,
    "task.unblocked": TaskUnblocked,
    "project.progress.updated": ProjectProgressUpdated,
    "bottleneck.detected": BottleneckDetected,
    "entity.created": EntityCreated,
    "entity.updated": EntityUpdated,
    "entity.deleted": EntityDeleted,
}
"""Payload model of every event type this module owns."""


def parse_payload(event_type: str, payload: dict[str, Any]) -> PMPayload:
    """Validate ``payload`` against the model of ``event_type``.

    Raises:
        InvalidEventError: the type is not a project-management type, or the payload does not fit its model.
    """
    model = PAYLOAD_MODELS.get(event_type)
    if model is None:
        raise InvalidEventError(f"{event_type!r} is not a project-management event type")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'payload'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidEventError(f"invalid {event_type} payload: {problems}") from exc
