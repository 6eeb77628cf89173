"""Translation of one Claude Code hook payload into events.

Claude Code sends a JSON object on the hook's stdin. For ``PostToolUse`` this
module returns:

* one ``file.saved`` per changed file for ``Write``, ``Edit``, ``NotebookEdit``
  and the legacy ``MultiEdit`` (its path is the top-level ``file_path``, never
  inside ``edits[]``), unless ``tool_response.staged`` says the file was held
  for review and not written;
* one ``command.executed`` for ``Bash``, with secrets redacted;
* nothing for other tools and other hook events.

Events carry the path relative to the project root, a content hash and the
size, never the file's content. Their ids derive from (session, tool use,
path, content hash), so the same change delivered twice is stored once.
Unknown payload keys are ignored, and missing optional ones are tolerated.
"""

from __future__ import annotations

import os
from mcp_server import clock, ids, jsoncodec, paths
from mcp_server.capture.redact import redact_command

__all__ = ["FILE_TOOLS", "HASH_LIMIT_BYTES", "HookInputError", "events_from_payload", "parse_payload"]

FILE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
"""Tools whose PostToolUse payload means a file was written."""

HASH_LIMIT_BYTES = 64 * 1024 * 1024
"""Files larger than this are not hashed: hashing 64 MiB already takes about 100 ms."""

MAX_COMMAND_CHARS = 2000
"""Recorded shell commands are cut to this length; long heredocs add nothing to the log."""

_HASH_CHUNK = 1024 * 1024


class HookInputError(ValueError):
    """Raised when hook stdin cannot be used; the message says what was wrong."""


def parse_payload(raw: bytes) -> dict[str, object]:
    """Decode hook stdin into a payload object.

    Raises:
        HookInputError: stdin is empty, not UTF-8 JSON, or not a JSON object.
    """
    if not raw.strip():
        raise HookInputError("empty input: the hook received no JSON on stdin")
    text = raw.decode("utf-8", "replace")
    try:
        payload = jsoncodec.loads(text)
    except jsoncodec.JSONDecodeFailure as exc:
        raise HookInputError(f"{exc}; input started with {text[:80]!r}") from None
    if not isinstance(payload, dict):
        raise HookInputError(f"invalid payload: expected a JSON object, got {type(payload).__name__}")
    return payload


def events_from_payload(payload: dict[str, object], root: str) -> list[dict[str, object]]:
    """Return the events one hook payload stands for (often none).

    Raises:
        HookInputError: a file tool's payload names no file, or a path outside ``root``.
    """
    if payload.get("hook_event_name", "PostToolUse") != "PostToolUse":
        return []

    tool = payload.get("tool_name")
    if tool in FILE_TOOLS:
        return _file_saved(payload, str(tool), root)
    if tool == "Bash":
        return [_command_executed(payload, root)]
    return []


def _text(mapping: object, key: str) -> str:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) else ""


def _changed_path(payload: dict[str, object], tool: str) -> str:
    tool_input = payload.get("tool_input")
    tool_response = payload.get("tool_response")
    if tool == "NotebookEdit":
        return _text(tool_input, "notebook_path") or _text(tool_response, "notebook_path")
    return _text(tool_input, "file_path") or _text(tool_response, "filePath")


def _edit_count(payload: dict[str, object], tool: str) -> int:
    tool_input = payload.get("tool_input")
    if tool == "MultiEdit" and isinstance(tool_input, dict) and isinstance(tool_input.get("edits"), list):
        return len(tool_input["edits"])
    return 1


def _change_kind(payload: dict[str, object], tool: str) -> str:
    tool_response = payload.get("tool_response")
    if tool == "Write":
        return _text(tool_response, "type") or "write"
    if tool == "NotebookEdit":
        tool_input = payload.get("tool_input")
        return "notebook." + (_text(tool_input, "edit_mode") or _text(tool_response, "edit_mode") or "replace")
    return "edit"


def _fingerprint(absolute: str) -> tuple[str | None, int | None]:
    """Return ``(content hash, size)``, with None for what cannot be read."""
    try:
        size = os.path.getsize(absolute)
    except OSError:
        return None, None
    if size > HASH_LIMIT_BYTES:
        return None, size

    try:
        from _sha256 import sha256  # Python 3.11; hashlib would load OpenSSL (~2 ms)
    except ImportError:
        from _sha2 import sha256  # type: ignore[no-redef]

    digest = sha256()
    try:
        with open(absolute, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError:
        return None, size
    return "sha256:" + digest.hexdigest(), size


def _metadata(payload: dict[str, object], tool_use_id: str) -> dict[str, object]:
    metadata: dict[str, object] = {
        "session_id": _text(payload, "session_id") or os.environ.get("CLAUDE_CODE_SESSION_ID") or None,
        "tool_use_id": tool_use_id or None,
        "hook_event": _text(payload, "hook_event_name") or "PostToolUse",
    }
    for key in ("agent_id", "agent_type", "prompt_id"):
        value = _text(payload, key)
        if value:
            metadata[key] = value
    return metadata


def _event(event_type: str, event_id: str, payload: dict[str, object], metadata: dict[str, object]) -> dict[str, object]:
    metadata["correlation_id"] = event_id
    metadata["causation_id"] = None
    return {
        "id": event_id,
        "type": event_type,
        "timestamp": clock.utc_timestamp(),
        "source": "hook",
        "payload": payload,
        "metadata": metadata,
    }


def _file_saved(payload: dict[str, object], tool: str, root: str) -> list[dict[str, object]]:
    tool_response = payload.get("tool_response")
    if isinstance(tool_response, dict) and tool_response.get("staged") is True:
        return []

    raw_path = _changed_path(payload, tool)
    if not raw_path:
        raise HookInputError(f"{tool} payload names no file: tool_input has no file path")
    relative = paths.to_project_path(root, raw_path)
    if relative is None:
        raise HookInputError(f"{tool} changed {raw_path!r}, which is outside the project root {root!r}; not recorded")

    absolute = os.path.join(root, relative)
    content_hash, size = _fingerprint(absolute)
    session_id = _text(payload, "session_id")
    tool_use_id = _text(payload, "tool_use_id")
    event_id = ids.derived_event_id("file.saved", session_id, tool_use_id, relative, content_hash or "")

    body: dict[str, object] = {
        "path": relative,
        "tool": tool,
        "change": _change_kind(payload, tool),
        "edits": _edit_count(payload, tool),
        "content_hash": content_hash,
        "size": size,
        "exists": size is not None,
    }
    return [_event("file.saved", event_id, body, _metadata(payload, tool_use_id))]


def _project_cwd(cwd: str, root: str) -> str | None:
    """Return the command's folder relative to the root: "." for the root, None outside it."""
    if not cwd or os.path.realpath(cwd) == root:
        return "."
    return paths.to_project_path(root, cwd)


def _command_executed(payload: dict[str, object], root: str) -> dict[str, object]:
    tool_input = payload.get("tool_input")
    tool_response = payload.get("tool_response")
    command = redact_command(_text(tool_input, "command"))
    if len(command) > MAX_COMMAND_CHARS:
        command = command[:MAX_COMMAND_CHARS] + " …[truncated]"

    stale = []
    hint = tool_response.get("staleReadFileStateHint") if isinstance(tool_response, dict) else None
    if isinstance(hint, list):
        stale = [relative for item in hint if isinstance(item, str) and (relative := paths.to_project_path(root, item))]

    session_id = _text(payload, "session_id")
    tool_use_id = _text(payload, "tool_use_id")
    if tool_use_id:
        event_id = ids.derived_event_id("command.executed", session_id, tool_use_id)
    else:
        event_id = ids.new_event_id()

    body: dict[str, object] = {
        "command": command,
        "description": _text(tool_input, "description") or None,
        "cwd": _project_cwd(_text(payload, "cwd"), root),
        "interrupted": bool(tool_response.get("interrupted")) if isinstance(tool_response, dict) else False,
        "stale_files": stale,
    }
    return _event("command.executed", event_id, body, _metadata(payload, tool_use_id))
