"""Notices for a session about changes made elsewhere, and the list of files to watch.

The hook cannot afford to open the log (see :mod:`mcp_server.inbox`), so the
reconcile projection, which runs in the server and CLI, leaves it small files
under the data folder:

* ``sessions/<session>/<name>.notice``: one line of text per change that
  another session, the CLI or another program made to a file this session
  read or edited. The hook takes each file by renaming it first, so two hook
  runs of one session (parallel tool calls) never both report it, and returns
  the lines to Claude Code as ``additionalContext``.
* ``watch-paths.txt``: absolute paths, one per line, that the ``SessionStart``
  hook returns as ``watchPaths`` so Claude Code's file watcher sends
  ``FileChanged`` for them.

Writers replace files atomically (write to a temporary name, then rename), so
the hook never reads half a file. Standard library only, without ``json``,
``re`` or ``typing``: the hook imports this module on every run.
"""

from __future__ import annotations

import os

from mcp_server import ids, jsoncodec

__all__ = [
    "MAX_CONTEXT_CHARS",
    "MAX_PENDING_NOTICES",
    "NOTICE_SUFFIX",
    "SESSIONS_DIR_NAME",
    "WATCH_PATHS_NAME",
    "amend_notice",
    "discard_session",
    "format_context",
    "hook_response",
    "read_watch_paths",
    "session_folder",
    "take_notices",
    "write_notice",
    "write_watch_paths",
]

SESSIONS_DIR_NAME = "sessions"
"""Sub-folder of the data folder with one folder of pending notices per session."""

WATCH_PATHS_NAME = "watch-paths.txt"
"""File in the data folder with the absolute paths that the SessionStart hook returns as ``watchPaths``."""

NOTICE_SUFFIX = ".notice"

MAX_CONTEXT_CHARS = 4000
"""Longest ``additionalContext`` the hook returns; Claude Code moves text over 10,000 characters to a file."""

MAX_PENDING_NOTICES = 500
"""Notices kept for one session; a session that never runs its hook again (it crashed) stops collecting here."""

_TAIL_RESERVE = 80
_MAX_LINE_CHARS = 600
_CONTEXT_HEADER = "eventsync: files this session read or edited were changed elsewhere since its last tool call:"


def session_folder(data_dir: str, session_id: str) -> str:
    """Return the folder of ``session_id``'s notices.

    Characters other than ASCII letters, digits, ``-`` and ``_`` become ``_``
    and a hash of the original id is appended, so any id maps to one safe name.
    """
    safe = "".join(char if (char.isascii() and char.isalnum()) or char in "-_" else "_" for char in session_id[:100])
    if safe != session_id:
        safe = f"{safe}-{ids.derived_event_id(session_id)[:8]}"
    return os.path.join(data_dir, SESSIONS_DIR_NAME, safe)


def _replace(path: str, text: str) -> None:
    staging = f"{path}.{os.getpid()}.tmp"
    with open(staging, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(text)
    os.replace(staging, path)


# -- written by the reconcile projection -------------------------------------------------


def write_notice(data_dir: str, session_id: str, name: str, line: str) -> bool:
    """Leave one notice line for ``session_id``; return False when its folder is full.

    ``name`` identifies the change, so writing one change twice leaves one file.

    Raises:
        OSError: the folder cannot be created or written.
    """
    folder = session_folder(data_dir, session_id)
    os.makedirs(folder, exist_ok=True)
    if len(os.listdir(folder)) >= MAX_PENDING_NOTICES:
        return False
    _replace(os.path.join(folder, name + NOTICE_SUFFIX), line.replace("\n", " ") + "\n")
    return True


def amend_notice(data_dir: str, session_id: str, name: str, detail: str) -> bool:
    """Append ``detail`` to a notice the session has not taken yet; return False if it is gone.

    The notice is moved aside while it is rewritten, so the hook either takes
    the old text before the move or the amended text after it, never both.

    Raises:
        OSError: the folder cannot be written.
    """
    path = os.path.join(session_folder(data_dir, session_id), name + NOTICE_SUFFIX)
    aside = f"{path}.{os.getpid()}.amend"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    with open(aside, encoding="utf-8", errors="surrogateescape") as handle:
        line = handle.read().rstrip("\n")
    _replace(path, (line + detail).replace("\n", " ") + "\n")
    os.unlink(aside)
    return True


def discard_session(data_dir: str, session_id: str) -> None:
    """Delete a session's folder of notices (the session ended); a missing folder is fine."""
    folder = session_folder(data_dir, session_id)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(folder)
    except OSError:
        pass  # a hook run of the ending session may have raced a file into it; it is empty next time


def write_watch_paths(data_dir: str, absolute_paths: list[str]) -> None:
    """Replace the list of paths the next ``SessionStart`` hook returns as ``watchPaths``.

    Raises:
        OSError: the data folder cannot be written.
    """
    os.makedirs(data_dir, exist_ok=True)
    _replace(os.path.join(data_dir, WATCH_PATHS_NAME), "".join(path + "\n" for path in absolute_paths))


# -- read by the hook --------------------------------------------------------------------


def take_notices(data_dir: str, session_id: str) -> list[str]:
    """Remove and return the pending notice lines of ``session_id``, oldest first.

    Raises:
        OSError: a notice could not be read after it was taken.
    """
    folder = session_folder(data_dir, session_id)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []

    lines: list[str] = []
    for name in names:
        if not name.endswith(NOTICE_SUFFIX):
            continue
        path = os.path.join(folder, name)
        taken = f"{path}.{os.getpid()}.taken"
        try:
            os.rename(path, taken)
        except FileNotFoundError:
            continue  # another hook run of this session took it
        with open(taken, encoding="utf-8", errors="replace") as handle:
            lines.extend(line for line in handle.read().splitlines() if line)
        os.unlink(taken)
    lines.sort()  # every line starts with its UTC timestamp
    return lines


def read_watch_paths(data_dir: str) -> list[str]:
    """Return the paths listed for Claude Code's file watcher (none when no list was written)."""
    try:
        with open(os.path.join(data_dir, WATCH_PATHS_NAME), encoding="utf-8", errors="surrogateescape") as handle:
            return [line for line in handle.read().splitlines() if line]
    except OSError:
        return []


def format_context(lines: list[str], limit: int = MAX_CONTEXT_CHARS) -> str:
    """Join notice lines under one header, cut to ``limit`` characters with a count of what was left out."""
    if not lines:
        return ""
    text = _CONTEXT_HEADER
    budget = limit - _TAIL_RESERVE
    for index, line in enumerate(lines):
        entry = "\n- " + line[:_MAX_LINE_CHARS]
        if len(text) + len(entry) > budget:
            return text + f"\n- {len(lines) - index} more changes are in the event log (query_events)."
        text += entry
    return text


def hook_response(hook_event: str, context: str = "", watch_paths: list[str] | None = None) -> str:
    """Return the JSON text the hook prints for Claude Code, or "" when there is no context and no path."""
    output: dict[str, object] = {}
    if context:
        output["additionalContext"] = context
    if watch_paths:
        output["watchPaths"] = watch_paths
    if not output:
        return ""
    return jsoncodec.dumps({"hookSpecificOutput": {"hookEventName": hook_event, **output}})
