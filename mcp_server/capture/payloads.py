"""Translation of one Claude Code hook payload into events.

Claude Code sends a JSON object on the hook's stdin. This module returns:

* for ``PostToolUse``, one ``file.saved`` per changed file for ``Write``,
  ``Edit``, ``NotebookEdit`` and the legacy ``MultiEdit`` (its path is the
  top-level ``file_path``, never inside ``edits[]``), unless
  ``tool_response.staged`` marks the file as held for review and not
  written. ``Bash`` gives one ``command.executed`` with secrets redacted,
  ``Read`` one ``file.read``, and other tools nothing.
* ``session.started`` for ``SessionStart``, ``session.ended`` for
  ``SessionEnd`` and ``session.turn.ended`` for ``Stop``.
* ``code.modified`` or ``code.deleted`` for ``FileChanged``, which Claude
  Code's file watcher sends whatever program wrote the file.
* nothing for other hook events. ``UserPromptSubmit`` only collects notices
  (see :mod:`mcp_server.capture.notices`).

Events carry the path relative to the project root, a content hash, the size
and the modification time, never the file's content. Ids are derived from
what identifies the change, so the same change delivered twice (the hook
configured in both plugin and project settings, a retry, two sessions
watching one file) is stored once. Unknown payload keys are ignored, and
missing optional ones are tolerated.
"""

from __future__ import annotations

import os
import stat
import time

from mcp_server import clock, ids, jsoncodec, paths
from mcp_server.capture.redact import redact_command

__all__ = [
    "DUPLICATE_WINDOW_NS",
    "FILE_TOOLS",
    "HASH_LIMIT_BYTES",
    "HookInputError",
    "events_from_payload",
    "nearest_folder_mtime",
    "parse_payload",
]

FILE_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
"""Tools whose PostToolUse payload means a file was written."""

HASH_LIMIT_BYTES = 64 * 1024 * 1024
"""Files larger than this are not hashed: hashing 64 MiB already takes about 100 ms."""

MAX_COMMAND_CHARS = 2000
"""Recorded shell commands are cut to this length; long heredocs add nothing to the log."""

MAX_DESCRIPTION_CHARS = 2000
"""Recorded Bash descriptions are cut to this length, so a long one cannot push the event over the payload limit."""

TRUNCATION_MARK = " …[truncated]"
"""Appended to a recorded command or description that was cut."""

_REDACTION_MARGIN = 1000
"""Characters past the cut that redaction still reads, so a secret that crosses the cut is found whole.

Redaction reads no further because some of its patterns take time quadratic in the text length.
"""

DUPLICATE_WINDOW_NS = 10 * 1_000_000_000
"""Width of the time bucket in the ids of session events.

Session payloads carry no per-delivery id. Two copies of one hook (plugin and
project settings run both, in parallel, milliseconds apart) therefore agree
on an id only through the time they ran. Two copies that straddle a bucket
boundary are stored twice, and two real events of one kind within one bucket
are stored once.
"""

_HASH_CHUNK = 1024 * 1024

_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
"""Flags for opening a file to hash; O_NONBLOCK and O_NOCTTY do not exist on Windows."""


class HookInputError(ValueError):
    """Raised when hook stdin cannot be used; the message names the problem."""


def parse_payload(raw: bytes) -> dict[str, object]:
    """Decode hook stdin into a payload object.

    Lone surrogates in strings come back as escaped text
    (see :func:`mcp_server.jsoncodec.escape_lone_surrogates`).

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
    # Bytes decoded with "replace" contain no surrogates, so a lone one can only come from a \uD800-\uDFFF
    # escape. UTF-8 cannot encode it and os.stat rejects it, so it is made text before any use.
    if "\\ud" in text or "\\uD" in text:
        payload = jsoncodec.escape_lone_surrogates(payload)  # type: ignore[assignment]
    return payload


def events_from_payload(payload: dict[str, object], root: str) -> list[dict[str, object]]:
    """Return the events one hook payload stands for (often none).

    Raises:
        HookInputError: a file tool's payload names no file, or a path outside ``root``.
    """
    hook_event = payload.get("hook_event_name", "PostToolUse")
    if hook_event == "PostToolUse":
        return _post_tool_use(payload, root)
    if hook_event == "SessionStart":
        return [_session_started(payload, root)]
    if hook_event == "SessionEnd":
        body = {"reason": _text(payload, "reason") or "other"}
        return [_session_event("session.ended", payload, body, _time_bucket())]
    if hook_event == "Stop":
        return [_turn_ended(payload)]
    if hook_event == "FileChanged":
        return _file_changed(payload, root)
    return []


def _post_tool_use(payload: dict[str, object], root: str) -> list[dict[str, object]]:
    tool = payload.get("tool_name")
    if tool in FILE_TOOLS:
        return _file_saved(payload, str(tool), root)
    if tool == "Bash":
        return [_command_executed(payload, root)]
    if tool == "Read":
        return _file_read(payload, root)
    return []


# -- reading payload fields --------------------------------------------------------------


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


def _project_path(root: str, raw_path: str, tool: str) -> str:
    """Return ``raw_path`` relative to the root.

    Raises:
        HookInputError: the path is empty or lies outside the root.
    """
    if not raw_path:
        raise HookInputError(f"{tool} payload names no file: tool_input has no file path")
    relative = paths.to_project_path(root, raw_path)
    if relative is None:
        raise HookInputError(f"{tool} changed {raw_path!r}, which is outside the project root {root!r}; not recorded")
    return relative


# -- looking at files --------------------------------------------------------------------


def _special_file_kind(mode: int) -> str:
    """Return the name of a file type other than a regular file, for the reason a hash is missing."""
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISDIR(mode):
        return "directory"
    return "not a regular file"


def _observe(absolute: str) -> tuple[str | None, int | None, int | None, str | None]:
    """Return ``(content hash, size, modification time in ns, reason the hash is missing)``.

    A missing file gives four Nones. Only regular files are opened: opening a
    named pipe waits for a writer and opening a device can act on it, and the
    agent waits for this hook. Such a file gets no hash and no size.
    """
    try:
        status = os.stat(absolute)
    except OSError:
        return None, None, None, None
    if not stat.S_ISREG(status.st_mode):
        return None, None, status.st_mtime_ns, _special_file_kind(status.st_mode)
    if status.st_size > HASH_LIMIT_BYTES:
        return None, status.st_size, status.st_mtime_ns, f"larger than {HASH_LIMIT_BYTES // (1024 * 1024)} MiB"

    try:
        from _sha256 import sha256  # Python 3.11; hashlib would load OpenSSL (~2 ms)
    except ImportError:
        from _sha2 import sha256  # type: ignore[no-redef]

    digest = sha256()
    try:
        # O_NONBLOCK keeps the open from waiting if a pipe replaced the file after the stat above.
        descriptor = os.open(absolute, _READ_FLAGS)
        with open(descriptor, "rb") as handle:
            opened = os.fstat(descriptor)
            if not stat.S_ISREG(opened.st_mode):
                return None, None, opened.st_mtime_ns, _special_file_kind(opened.st_mode)
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        return None, status.st_size, status.st_mtime_ns, f"unreadable: {exc.strerror or exc}"
    return "sha256:" + digest.hexdigest(), status.st_size, status.st_mtime_ns, None


def nearest_folder_mtime(absolute: str, root: str) -> int:
    """Return the modification time of the nearest existing folder above ``absolute``, or 0.

    Removing a file updates its folder's time, so two hooks reporting the
    same removal agree on it while a later removal of a re-created file does not.
    """
    folder = os.path.dirname(absolute)
    while len(folder) >= len(root):
        try:
            return os.stat(folder).st_mtime_ns
        except OSError:
            folder = os.path.dirname(folder)
    return 0


# -- building events ---------------------------------------------------------------------


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


def _time_bucket() -> str:
    return str(time.time_ns() // DUPLICATE_WINDOW_NS)


def _file_saved(payload: dict[str, object], tool: str, root: str) -> list[dict[str, object]]:
    tool_response = payload.get("tool_response")
    if isinstance(tool_response, dict) and tool_response.get("staged") is True:
        return []

    relative = _project_path(root, _changed_path(payload, tool), tool)
    content_hash, size, mtime_ns, unhashed = _observe(os.path.join(root, relative))
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
        "mtime_ns": mtime_ns,
        "exists": mtime_ns is not None,
    }
    if unhashed is not None:
        body["hash_skipped"] = unhashed
    return [_event("file.saved", event_id, body, _metadata(payload, tool_use_id))]


def _file_read(payload: dict[str, object], root: str) -> list[dict[str, object]]:
    raw_path = _changed_path(payload, "Read")
    relative = paths.to_project_path(root, raw_path) if raw_path else None
    if relative is None:
        return []  # no path, or a file outside the project: nothing this project tracks
    session_id = _text(payload, "session_id")
    tool_use_id = _text(payload, "tool_use_id")
    if tool_use_id:
        event_id = ids.derived_event_id("file.read", session_id, tool_use_id, relative)
    else:
        event_id = ids.new_event_id()
    return [_event("file.read", event_id, {"path": relative, "tool": "Read"}, _metadata(payload, tool_use_id))]


def _project_cwd(cwd: str, root: str) -> str | None:
    """Return the command's folder relative to the root: "." for the root, None outside it."""
    if not cwd or os.path.realpath(cwd) == root:
        return "."
    return paths.to_project_path(root, cwd)


def _redacted_prefix(text: str, limit: int) -> str:
    """Return ``text`` with secrets redacted, cut to ``limit`` characters plus :data:`TRUNCATION_MARK`."""
    if len(text) <= limit:
        return redact_command(text)
    redacted = redact_command(text[: limit + _REDACTION_MARGIN])
    # A secret that crosses the end of the redacted slice is seen only in part and may stay
    # unredacted, so the margin's worth of text before that end is never kept.
    return redacted[: max(0, min(limit, len(redacted) - _REDACTION_MARGIN))] + TRUNCATION_MARK


def _command_executed(payload: dict[str, object], root: str) -> dict[str, object]:
    tool_input = payload.get("tool_input")
    tool_response = payload.get("tool_response")
    command = _redacted_prefix(_text(tool_input, "command"), MAX_COMMAND_CHARS)
    description = _redacted_prefix(_text(tool_input, "description"), MAX_DESCRIPTION_CHARS)

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

    duration = payload.get("duration_ms")
    body: dict[str, object] = {
        "command": command,
        "description": description or None,
        "cwd": _project_cwd(_text(payload, "cwd"), root),
        "interrupted": bool(tool_response.get("interrupted")) if isinstance(tool_response, dict) else False,
        "background": bool(isinstance(tool_input, dict) and tool_input.get("run_in_background")),
        "duration_ms": duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
        "stale_files": stale,
    }
    return _event("command.executed", event_id, body, _metadata(payload, tool_use_id))


def _session_event(
    event_type: str, payload: dict[str, object], body: dict[str, object], *key: str
) -> dict[str, object]:
    session_id = _text(payload, "session_id")
    event_id = ids.derived_event_id(event_type, session_id, *key, *(str(value) for value in body.values()))
    return _event(event_type, event_id, body, _metadata(payload, ""))


def _session_started(payload: dict[str, object], root: str) -> dict[str, object]:
    body: dict[str, object] = {
        "source": _text(payload, "source") or "startup",
        "cwd": _project_cwd(_text(payload, "cwd"), root),
    }
    for key in ("model", "agent_type"):
        value = _text(payload, key)
        if value:
            body[key] = value
    return _session_event("session.started", payload, body, _time_bucket())


def _turn_ended(payload: dict[str, object]) -> dict[str, object]:
    body: dict[str, object] = {"stop_hook_active": payload.get("stop_hook_active") is True}
    # The prompt id (Claude Code 2.1.196 and later) and the turn's last message identify the turn:
    # copies of one Stop get one id and two quick turns get two. Payloads with neither use the time.
    prompt_id = _text(payload, "prompt_id")
    message = _text(payload, "last_assistant_message")
    if not prompt_id and not message:
        return _session_event("session.turn.ended", payload, body, _time_bucket())
    return _session_event("session.turn.ended", payload, body, prompt_id, ids.derived_event_id(message))


def _file_changed(payload: dict[str, object], root: str) -> list[dict[str, object]]:
    relative = _project_path(root, _text(payload, "file_path"), "FileChanged")
    absolute = os.path.join(root, relative)
    change = _text(payload, "event") or "change"
    content_hash, size, mtime_ns, unhashed = _observe(absolute)
    # session_id names the session whose watcher saw the change, not the writer; keep it out of
    # metadata so the change is not attributed to that session, and out of the id so every
    # watching session stores one event.
    metadata = _metadata(payload, "")
    body: dict[str, object] = {"path": relative, "origin": "FileChanged", "change": change,
                               "observed_by": metadata["session_id"]}
    metadata["session_id"] = None

    if mtime_ns is None:
        folder_mtime = nearest_folder_mtime(absolute, root)
        event_id = ids.derived_event_id("code.deleted", "FileChanged", relative, str(folder_mtime))
        return [_event("code.deleted", event_id, body, metadata)]

    body.update({"content_hash": content_hash, "size": size, "mtime_ns": mtime_ns, "exists": True})
    if unhashed is not None:
        body["hash_skipped"] = unhashed
    event_id = ids.derived_event_id("code.modified", "FileChanged", relative, content_hash or "", str(mtime_ns))
    return [_event("code.modified", event_id, body, metadata)]
