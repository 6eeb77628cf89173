"""The event model and the catalog of event types.

An event is a fact that happened: ``id`` (UUID), ``type`` (dotted lower-case
segments), ``timestamp`` (UTC ISO 8601), ``source`` (who produced it),
``payload`` (what happened) and ``metadata`` (session, correlation and
causation ids, and the causation ``depth``). In the log and on the wire an
event is a plain JSON object; :class:`Event` is its validated form at the
MCP boundary, and :func:`make_event` builds the wire form for producers.

Causation: an event produced in reaction to another carries
``causation_id`` (the event it reacts to), ``correlation_id`` (the first event
of the chain) and ``depth`` (the chain length so far).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcp_server import clock, ids, subjects
from mcp_server.errors import InvalidEventError
from mcp_server.store.base import StoredEvent

__all__ = [
    "CATALOG",
    "MAX_CAUSATION_DEPTH",
    "Event",
    "EventMetadata",
    "EventType",
    "PAYLOAD_VERSIONS",
    "causation_depth",
    "check_emittable",
    "make_event",
]


class EventMetadata(BaseModel):
    """Session, correlation and causation of an event."""

    model_config = ConfigDict(extra="allow")

    session_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    depth: int = 0


class Event(BaseModel):
    """One event, as the MCP tools return it."""

    model_config = ConfigDict(frozen=True)

    position: int | None = Field(default=None, description="Position in the log; None before it is stored.")
    id: str
    type: str
    timestamp: str
    source: str
    payload: dict[str, Any]
    metadata: EventMetadata

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        return subjects.validate_type(value)

    @classmethod
    def from_stored(cls, event: StoredEvent) -> Event:
        """Return the validated form of a stored event."""
        return cls.model_validate(event.to_dict())


@dataclass(frozen=True, slots=True)
class EventType:
    """An entry of the catalog: a known type and what it means."""

    name: str
    owner: str
    description: str


def _catalog(*entries: tuple[str, str, str]) -> dict[str, EventType]:
    return {name: EventType(name, owner, description) for name, owner, description in entries}


CATALOG: dict[str, EventType] = _catalog(
    ("file.saved", "capture", "Claude Code's Write, Edit, MultiEdit or NotebookEdit wrote a file, or a Bash command "
     "created or changed one (tool 'Bash', found by reconcile); path, tool, content hash, size."),
    ("code.modified", "capture", "A file changed outside Claude Code's tools (editor, formatter, another program); "
     "origin 'FileChanged' or 'outside'."),
    ("code.deleted", "capture", "A file was deleted."),
    ("refactor.complete", "capture", "Files were renamed or moved; the payload maps old paths to new ones."),
    ("command.executed", "capture", "The Bash tool ran a command (redacted command text, folder, stale files)."),
    ("file.read", "capture", "Claude Code's Read tool read a file (path); marks the file as used by the session."),
    ("session.started", "capture", "A Claude Code session started or resumed (source, model)."),
    ("session.ended", "capture", "A Claude Code session ended (reason)."),
    ("session.turn.ended", "capture", "Claude Code's Stop hook fired: the main agent finished its turn."),
    ("session.turn.completed", "reconcile", "What a session's turn changed: files saved, deleted and renamed, "
     "commands, changes by other programs."),
    ("touchpoint.added", "touchpoints", "A @touchpoint annotation appeared (name, path, line, description)."),
    ("touchpoint.removed", "touchpoints", "A @touchpoint annotation disappeared from a file."),
    ("touchpoint.updated", "touchpoints", "Per-file summary after re-extraction: names added, removed, moved, and the current list."),
    ("touchpoint.skipped", "touchpoints", "A file was not scanned (binary, over the size limit, unknown language)."),
    ("context.invalidated", "context", "Cached get_context results were dropped because a file they include changed."),
    ("entity.created", "pm", "A generic graph entity was created."),
    ("entity.updated", "pm", "A generic graph entity changed."),
    ("entity.deleted", "pm", "A generic graph entity was deleted."),
    ("project.created", "pm", "A project was created."),
    ("task.created", "pm", "A task was created."),
    ("task.updated", "pm", "A task's title or estimate changed, or it was linked to more touchpoints."),
    ("task.dependency.added", "pm", "A task now waits for another task of its project to be completed."),
    ("task.dependency.removed", "pm", "A task no longer waits for another task."),
    ("task.assigned", "pm", "A task was assigned to a person or agent."),
    ("task.completed", "pm", "A task was completed."),
    ("task.unblocked", "pm", "A task's last open dependency was completed or removed."),
    ("project.progress.updated", "pm", "A project's share of completed tasks changed."),
    ("bottleneck.detected", "pm", "A task or person holds up much of the remaining work."),
    ("schema.updated", "schema", "Event payload schemas were added, changed or removed."),
    ("module.loaded", "runtime", "A module started, with the types it subscribes to and emits."),
    ("query.invalidated", "schema", "A saved query or module subscription uses a field or type a schema change removed."),
    ("integration.failed", "webhooks", "A webhook delivery failed after its last attempt (url, event id, attempts, error)."),
    ("event.failed", "bus", "A handler failed on an event (event id and type, handler, error), or a causation chain was cut."),
)
"""Event types eventsync itself produces. Other dotted lower-case types are accepted too."""

RESERVED_NAMESPACES: dict[str, str] = {
    "file": "capture", "code": "capture", "session": "capture", "touchpoint": "touchpoints", "task": "pm", "project": "pm",
}
"""First segments of types that eventsync's own modules produce, including types they may add later."""

EMITTABLE_TYPES = frozenset({"entity.created", "entity.updated", "entity.deleted"})
"""Catalog types that agents and people emit themselves: generic graph entities have no tool of their own."""

_HOW_TO_RECORD = {
    "capture": "eventsync records file, command and session events itself from Claude Code's hooks; to bring the "
               "index in step with files changed on disk, run 'eventsync index' or call the index_project tool",
    "reconcile": "eventsync records changes made by commands and other programs itself; run 'eventsync index' "
                 "or call the index_project tool to bring the index in step with the files on disk",
    "touchpoints": "the touchpoint index derives these from file events; run 'eventsync index' or call the "
                   "index_project tool to re-read the files",
    "context": "the context cache derives these from file events",
    "pm": "use the project-management tools (create_project, add_task, update_task, assign_task, complete_task) "
          "or 'eventsync pm', which check the task graph first",
}


def check_emittable(event_type: str) -> None:
    """Reject a type that eventsync's own modules produce, for ``emit_event`` and ``eventsync emit``.

    Those events drive projections: a forged ``task.completed`` would skip the
    dependency check of the commands, and a forged ``file.saved`` points the
    index at a file no tool wrote. Entity events are the exception, see
    :data:`EMITTABLE_TYPES`.

    Raises:
        InvalidEventError: ``event_type`` is reserved.
    """
    if event_type in EMITTABLE_TYPES:
        return
    known = CATALOG.get(event_type)
    owner = known.owner if known is not None else RESERVED_NAMESPACES.get(event_type.split(".", 1)[0])
    if owner is None:
        return
    advice = _HOW_TO_RECORD.get(
        owner, "record a fact of your own under a type of your own, such as note.added"
    )
    raise InvalidEventError(f"cannot emit {event_type!r}: eventsync's {owner} module produces it; {advice}")


PAYLOAD_VERSIONS: dict[str, int] = {}
"""Current payload schema version per type, kept by :data:`mcp_server.schema.registry.REGISTRY`.

:func:`make_event` stamps it into ``metadata.schema_version`` so readers can
upcast old payloads; a type missing here is written without the key (version 1).
"""


MAX_CAUSATION_DEPTH = 16
"""Longest chain of events caused by handlers; a cycle of handlers stops after this many hops."""


def causation_depth(event: StoredEvent | None) -> int:
    """Return the causation depth recorded on ``event`` (0 for none or a root event)."""
    if event is None:
        return 0
    depth = event.metadata.get("depth", 0)
    return depth if isinstance(depth, int) else 0


def make_event(
    event_type: str,
    payload: dict[str, Any],
    *,
    source: str,
    session_id: str | None = None,
    cause: StoredEvent | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """Build an event in wire form, linked to ``cause`` when it reacts to one.

    Raises:
        InvalidEventError: ``event_type`` is not a valid type name.
    """
    subjects.validate_type(event_type)
    new_id = event_id or ids.new_event_id()
    metadata: dict[str, Any] = {"session_id": session_id, "correlation_id": new_id, "causation_id": None, "depth": 0}
    if event_type in PAYLOAD_VERSIONS:
        metadata["schema_version"] = PAYLOAD_VERSIONS[event_type]
    if cause is not None:
        metadata["session_id"] = session_id or cause.metadata.get("session_id")
        metadata["correlation_id"] = cause.metadata.get("correlation_id") or cause.id
        metadata["causation_id"] = cause.id
        metadata["depth"] = causation_depth(cause) + 1
    return {
        "id": new_id,
        "type": event_type,
        "timestamp": clock.utc_timestamp(),
        "source": source,
        "payload": payload,
        "metadata": metadata,
    }
