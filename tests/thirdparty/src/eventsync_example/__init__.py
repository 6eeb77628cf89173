"""A local eventsync module: it records a note for every saved file.

It owns the ``note.recorded`` type. Version 1 of its payload named the file
``file``; version 2 calls it ``path`` and adds ``words``, and the upcaster
below turns old events into the new shape.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from mcp_server.modules.loader import EventsyncModule, ModuleContext
from mcp_server.store.base import StoredEvent


class NoteRecorded(BaseModel):
    """A note about a saved file."""

    SCHEMA_VERSION: ClassVar[int] = 2

    path: str = Field(description="Saved file, relative to the project root.")
    note: str = Field(description="Text of the note.")
    words: int = Field(description="Words in the note.")


def note_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Rename ``file`` to ``path`` and count the note's words."""
    payload["path"] = payload.pop("file")
    payload["words"] = len(str(payload.get("note", "")).split())
    return payload


def record_note(event: StoredEvent, context: ModuleContext) -> None:
    """Publish ``note.recorded`` for a ``file.saved`` event."""
    note = f"saw {event.payload['path']}"
    context.publish("note.recorded", {"path": event.payload["path"], "note": note, "words": len(note.split())})


MODULE = EventsyncModule(
    name="example-notes",
    version="1.2.0",
    subscriptions=("file.saved",),
    emits=("note.recorded",),
    payload_models={"note.recorded": NoteRecorded},
    upcasters={"note.recorded": {1: note_v1_to_v2}},
    handler=record_note,
    description="Records a note for every saved file.",
)
