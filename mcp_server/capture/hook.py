"""The capture hook: the command Claude Code runs on its hook events.

The agent waits for this process after every matching tool call, so it must be
fast, must never break the call and must never lose an event. It therefore:

* imports only the standard library (no pydantic, no mcp, no sqlite3);
* writes events to the inbox (see :mod:`mcp_server.inbox`), falling back to a
  per-user spill folder when the data folder is not writable;
* exits 0 in every case: a non-zero exit is shown to the user or the model as
  an error;
* prints nothing on stdout unless it has something to tell Claude Code: on
  ``PostToolUse``, ``UserPromptSubmit`` and ``SessionStart`` it returns the
  pending notices of the session (changes other sessions made to files it
  used) as ``additionalContext``, and on ``SessionStart`` the files to watch
  as ``watchPaths`` (see :mod:`mcp_server.capture.notices`).

Problems go to ``<data folder>/hook.log`` and stderr, which Claude Code keeps
in its debug log. ``EVENTSYNC_DEBUG=1`` adds a line per stored event.
"""

from __future__ import annotations

import io
import os
import sys

from mcp_server import clock, inbox, paths
from mcp_server.capture import notices
from mcp_server.capture.payloads import HookInputError, events_from_payload, parse_payload

__all__ = ["CONTEXT_EVENTS", "HOOK_LOG_NAME", "main", "run"]

CONTEXT_EVENTS = frozenset({"PostToolUse", "UserPromptSubmit", "SessionStart"})
"""Hook events whose JSON output may carry ``additionalContext`` for the model."""

HOOK_LOG_NAME = "hook.log"
_HOOK_LOG_LIMIT = 1024 * 1024
"""Size at which hook.log is rotated to hook.log.1, so a noisy project cannot fill the disk."""


def _log(data_dir: str, level: str, message: str) -> None:
    """Append one line to hook.log and stderr; never raise."""
    line = f"{clock.utc_timestamp()} {level} eventsync.hook: {message}\n"
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    log_path = os.path.join(data_dir, HOOK_LOG_NAME)
    try:
        if os.path.getsize(log_path) > _HOOK_LOG_LIMIT:
            os.replace(log_path, log_path + ".1")
    except OSError:
        pass
    try:
        os.makedirs(data_dir, exist_ok=True)
        with open(log_path, "a", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(line)
    except OSError:
        pass


def _store(root: str, data_dir: str, event: dict[str, object]) -> None:
    """Write ``event`` to the inbox, or to the spill folder if the inbox fails."""
    primary = os.path.join(data_dir, inbox.INBOX_DIR_NAME)
    try:
        inbox.write_event(primary, event)
        return
    except OSError as exc:
        failure = exc

    spill = paths.fallback_spill_dir(root)
    try:
        inbox.write_event(spill, event)
    except OSError as exc:
        _log(data_dir, "ERROR", f"could not store event {event['id']} ({event['type']}): inbox {primary!r} failed with "
             f"{failure}; spill folder {spill!r} failed with {exc}. Make {data_dir!r} writable.")
        return
    _log(data_dir, "WARNING", f"inbox {primary!r} is not writable ({failure}); event {event['id']} ({event['type']}) "
         f"kept in {spill!r} until the next eventsync reader ingests it. Make {data_dir!r} writable.")


def _response(payload: dict[str, object], data_dir: str) -> str:
    """Return the hook's output for Claude Code: pending notices and, at session start, the paths to watch."""
    hook_event = payload.get("hook_event_name", "PostToolUse")
    session_id = payload.get("session_id")
    if hook_event not in CONTEXT_EVENTS or not isinstance(session_id, str) or not session_id:
        return ""
    context = ""
    try:
        context = notices.format_context(notices.take_notices(data_dir, session_id))
    except OSError as exc:
        _log(data_dir, "WARNING", f"could not read the notices of session {session_id!r}: {exc}")
    watch = notices.read_watch_paths(data_dir) if hook_event == "SessionStart" else None
    return notices.hook_response(str(hook_event), context, watch)


def run(
    raw: bytes, environ: dict[str, str] | os._Environ[str] = os.environ, stdout: io.TextIOBase | None = None
) -> int:
    """Capture the events in one hook payload and write any response to ``stdout``; always return 0."""
    root = paths.find_project_root(environ=environ)
    data_dir = paths.data_dir(root, environ)
    debug = environ.get("EVENTSYNC_DEBUG", "") not in ("", "0")

    try:
        payload = parse_payload(raw)
        if not environ.get("CLAUDE_PROJECT_DIR") and isinstance(payload.get("cwd"), str):
            root = paths.find_project_root(cwd=payload["cwd"], environ=environ)
            data_dir = paths.data_dir(root, environ)
        events = events_from_payload(payload, root)
    except HookInputError as exc:
        _log(data_dir, "WARNING", str(exc))
        return 0

    for event in events:
        _store(root, data_dir, event)
        if debug:
            _log(data_dir, "DEBUG", f"captured {event['type']} {event['id']} {event['payload'].get('path', '')}")  # type: ignore[union-attr]

    response = _response(payload, data_dir)
    if response and stdout is not None:
        stdout.write(response)
        stdout.flush()
    return 0


def main() -> int:
    """Entry point: read stdin, capture, exit 0 whatever happens."""
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # a stray print must never reach Claude Code
    try:
        raw = sys.stdin.buffer.read()
        return run(raw, stdout=real_stdout)  # type: ignore[arg-type]
    except BaseException as exc:  # noqa: BLE001 - the hook must not fail the agent's tool call
        try:
            root = paths.find_project_root()
            _log(paths.data_dir(root), "ERROR", f"hook failed unexpectedly: {type(exc).__name__}: {exc}")
        except BaseException:  # noqa: BLE001
            pass
        return 0
    finally:
        sys.stdout = real_stdout
