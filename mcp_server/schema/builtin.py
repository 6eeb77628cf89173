"""Payload models of the event types eventsync's own parts emit.

The capture hook must stay free of pydantic (it runs on every tool call), so
the models of what it writes live here rather than next to it; the same goes
for the built-in modules, whose files stay focused on their state. The PM
module registers its own models (``mcp_server.pm.PAYLOAD_MODELS``).

Models accept unknown keys: they describe what a type carries today for the
reference and for strict mode, without rejecting a producer that adds a key.
The capture hook writes no ``schema_version``, so its types must stay at
version 1 until the hook stamps the version it writes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BUILTIN_MODELS"]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")


# -- capture -----------------------------------------------------------------------------


class FileSaved(_Payload):
    """Claude Code's Write, Edit, MultiEdit or NotebookEdit wrote a file."""

    path: str = Field(description="Path relative to the project root, with '/' separators.")
    tool: str | None = Field(default=None, description="Tool that wrote the file: Write, Edit, MultiEdit or NotebookEdit.")
    change: str | None = Field(default=None, description="'create', 'update', 'edit' or 'notebook.<edit mode>'.")
    edits: int | None = Field(default=None, description="Edits applied in the tool call (MultiEdit may apply several).")
    content_hash: str | None = Field(default=None, description="'sha256:<hex>' of the file after the change.")
    size: int | None = Field(default=None, description="File size in bytes after the change.")
    exists: bool | None = Field(default=None, description="Whether the file existed when the hook ran.")
    hash_skipped: str | None = Field(
        default=None,
        description="Why content_hash is missing: 'named pipe', 'socket', 'character device', 'block device', "
        "'directory', 'larger than 64 MiB' or 'unreadable: <error>'. Only regular files are read.",
    )


class CodeModified(_Payload):
    """A file changed outside Claude's file tools (shell command, editor, formatter)."""

    path: str = Field(description="Path relative to the project root.")
    content_hash: str | None = Field(default=None, description="'sha256:<hex>' of the file after the change.")
    size: int | None = Field(default=None, description="File size in bytes after the change.")
    hash_skipped: str | None = Field(default=None, description="Why content_hash is missing, as in file.saved.")


class CodeDeleted(_Payload):
    """A file was deleted."""

    path: str = Field(description="Path relative to the project root.")


class RefactorComplete(_Payload):
    """Files were renamed or moved."""

    renames: dict[str, str] = Field(default_factory=dict, description="Old project-relative path → new path.")


class CommandExecuted(_Payload):
    """The Bash tool ran a command."""

    command: str = Field(description="Command text with secrets redacted, cut to 2000 characters; a cut text "
                         "ends with ' …[truncated]'.")
    description: str | None = Field(default=None, description="The description Claude gave the command, with "
                                    "secrets redacted and cut like the command.")
    cwd: str | None = Field(default=None, description="Folder relative to the project root; None outside it.")
    interrupted: bool = Field(default=False, description="Whether the command was interrupted.")
    stale_files: list[str] = Field(default_factory=list, description="Files Claude Code reported changed on disk.")


class SessionStarted(_Payload):
    """A Claude Code session started."""

    session_id: str | None = Field(default=None, description="Claude Code session id.")


class SessionEnded(_Payload):
    """A Claude Code session ended."""

    session_id: str | None = Field(default=None, description="Claude Code session id.")


# -- touchpoints and context ------------------------------------------------------------------


class TouchpointLocation(_Payload):
    """A @touchpoint annotation at one location."""

    name: str = Field(description="Touchpoint name.")
    path: str = Field(description="File relative to the project root.")
    line: int = Field(description="1-based line of the marker.")
    column: int = Field(description="1-based column of the marker.")
    description: str = Field(default="", description="Text after the name.")
    language: str = Field(default="", description="Language of the file, as the scanner detected it.")
    cell: int | None = Field(default=None, description="Notebook cell index, for .ipynb files.")


class TouchpointAdded(TouchpointLocation):
    """A @touchpoint annotation appeared."""


class TouchpointRemoved(TouchpointLocation):
    """A @touchpoint annotation disappeared from a file."""


class TouchpointMove(_Payload):
    """One touchpoint that moved within a file."""

    name: str
    from_line: int
    to_line: int
    description: str = ""


class TouchpointUpdated(_Payload):
    """Per-file summary after re-extraction."""

    path: str = Field(description="File relative to the project root.")
    deleted: bool = Field(default=False, description="Whether the file was deleted.")
    added: list[str] = Field(default_factory=list, description="Names that appeared.")
    removed: list[str] = Field(default_factory=list, description="Names that disappeared.")
    moved: list[TouchpointMove] = Field(default_factory=list, description="Names that changed line or description.")
    touchpoints: list[TouchpointLocation] = Field(default_factory=list, description="Every touchpoint now in the file.")
    truncated: bool = Field(default=False, description="Whether 'touchpoints' was cut at 2000 entries.")


class TouchpointSkipped(_Payload):
    """A file was not scanned."""

    path: str = Field(description="File relative to the project root.")
    reason: str = Field(description="'binary', 'size', 'language' or another scanner reason.")


class ContextInvalidated(_Payload):
    """Cached get_context results were dropped."""

    names: list[str] = Field(description="Touchpoint names whose cached context was dropped.")
    path: str = Field(description="File whose change made them stale.")
    reason: str = Field(description="Type of the event that caused the invalidation.")


# -- runtime, bus, schema and integrations ---------------------------------------------------


class EventFailed(_Payload):
    """A handler failed on an event, or a causation chain was cut."""

    event_id: str = Field(description="Id of the event being handled.")
    event_type: str = Field(description="Type of that event.")
    handler: str | None = Field(default=None, description="Subscription or consumer name that failed.")
    error_type: str | None = Field(default=None, description="Exception class name.")
    error: str | None = Field(default=None, description="Exception type and message.")
    attempt: int | None = Field(default=None, description="Attempt number.")
    reason: str | None = Field(default=None, description="'causation depth limit' when a chain was cut.")
    refused_type: str | None = Field(default=None, description="Type that was not published because of the limit.")
    depth: int | None = Field(default=None, description="Chain length the refused event would have had.")
    max_depth: int | None = Field(default=None, description="The configured limit.")


class ModuleLoaded(_Payload):
    """A module started, with its capabilities."""

    name: str = Field(description="Module name.")
    version: str = Field(description="Module version.")
    kind: str = Field(description="'durable' (state and checkpoint in the log's database) or 'local' (in memory).")
    source: str = Field(description="'builtin', 'config', 'entry_point' or 'env' (EVENTSYNC_MODULES).")
    subscriptions: list[str] = Field(default_factory=list, description="Type patterns it handles.")
    emits: list[str] = Field(default_factory=list, description="Types it emits.")
    payload_types: dict[str, int] = Field(default_factory=dict, description="Types whose models it owns → version.")


class SchemaChange(_Payload):
    """One type in a schema.updated event."""

    type: str
    old_version: int | None = Field(description="Version before the change; None for an added type.")
    new_version: int | None = Field(description="Version after the change; None for a deleted type.")
    owner: str | None = None
    added_fields: list[str] = Field(default_factory=list)
    removed_fields: list[str] = Field(default_factory=list)
    changed_fields: list[str] = Field(default_factory=list)


class SchemaUpdated(_Payload):
    """Event payload schemas were added, changed or removed."""

    added: list[SchemaChange] = Field(default_factory=list)
    modified: list[SchemaChange] = Field(default_factory=list)
    deleted: list[SchemaChange] = Field(default_factory=list)
    schemas: dict[str, Any] = Field(
        default_factory=dict, description="New entry per added or modified type: version, owner, description, json_schema."
    )


class QueryInvalidated(_Payload):
    """A stored query uses a field or type that a schema change removed."""

    query: str = Field(description="Saved query name, or the module name for a subscription.")
    kind: str = Field(description="'saved' for a saved filter, 'subscription' for a module's subscription.")
    type: str = Field(description="Event type whose schema changed.")
    field: str | None = Field(default=None, description="Removed payload field; None when the whole type was removed.")
    old_version: int | None = None
    new_version: int | None = None
    schema_event_id: str = Field(description="Id of the schema.updated event that removed it.")


class IntegrationFailed(_Payload):
    """A webhook delivery failed after its last attempt."""

    url: str = Field(description="Configured webhook URL.")
    event_id: str = Field(description="Id of the event that was not delivered.")
    event_type: str = Field(description="Its type.")
    attempts: int = Field(description="Attempts made.")
    last_error: str = Field(description="Error of the last attempt (HTTP status or network error).")


BUILTIN_MODELS: dict[str, dict[str, type[BaseModel]]] = {
    "capture": {
        "file.saved": FileSaved,
        "code.modified": CodeModified,
        "code.deleted": CodeDeleted,
        "refactor.complete": RefactorComplete,
        "command.executed": CommandExecuted,
        "session.started": SessionStarted,
        "session.ended": SessionEnded,
    },
    "touchpoints": {
        "touchpoint.added": TouchpointAdded,
        "touchpoint.removed": TouchpointRemoved,
        "touchpoint.updated": TouchpointUpdated,
        "touchpoint.skipped": TouchpointSkipped,
    },
    "context": {"context.invalidated": ContextInvalidated},
    "bus": {"event.failed": EventFailed},
    "runtime": {"module.loaded": ModuleLoaded},
    "schema": {"schema.updated": SchemaUpdated, "query.invalidated": QueryInvalidated},
    "webhooks": {"integration.failed": IntegrationFailed},
}
"""Owner (the module name in the catalog) → event type → payload model."""
