"""The capture inbox: where hook processes drop events for the log to ingest.

A hook runs once per tool call and the agent waits for it, so it does not open
the SQLite log (loading ``_sqlite3`` alone costs about 4 ms, and a busy writer
could make it wait). It writes each event as one small JSON file, Maildir
style: the file is written under ``tmp/`` and renamed into ``new/``, so a reader
never sees a partial event and writers never contend for a lock. Any eventsync
process that reads the log (server tailer, CLI) first ingests ``new/`` in name
order inside one transaction and then deletes the files it stored; a crash
between the two is harmless because the log is idempotent on event id.

Durability matches the log's ``synchronous=NORMAL`` setting: an accepted event
survives the crash of any process, not a power loss.

Standard library only: the capture hook imports this module.
"""

from __future__ import annotations

import os
import time

from mcp_server import jsoncodec

__all__ = ["INBOX_DIR_NAME", "discard", "pending_files", "read_event", "write_event"]

INBOX_DIR_NAME = "inbox"
"""Sub-folder of the data folder that contains captured events not yet in the log."""

_counter = 0


def write_event(inbox_dir: str, event: dict[str, object]) -> str:
    """Store ``event`` durably in ``inbox_dir`` and return the final file path.

    Strings with lone surrogates are stored with each surrogate written as
    text (see :func:`mcp_server.jsoncodec.escape_lone_surrogates`).

    Raises:
        OSError: the folder cannot be created or written.
    """
    global _counter
    _counter += 1
    name = f"{time.time_ns():020d}-{os.getpid()}-{_counter:04d}-{os.urandom(3).hex()}.json"
    staging = os.path.join(inbox_dir, "tmp", name)
    final = os.path.join(inbox_dir, "new", name)
    text = jsoncodec.dumps(event)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a \ud800 escape in the hook's input, or a name decoded with
        # surrogateescape) would make the log reject the event, so it is kept as escaped text.
        data = jsoncodec.dumps(jsoncodec.escape_lone_surrogates(event)).encode("utf-8")

    try:
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileNotFoundError:
        _create_inbox(inbox_dir)
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)

    os.replace(staging, final)
    return final


def _create_inbox(inbox_dir: str) -> None:
    """Create the inbox folders and keep the folder above them out of git.

    The first hook run in a project may come before any eventsync process
    has opened the data folder, and ``git add -A`` must not pick up events.
    """
    os.makedirs(os.path.join(inbox_dir, "tmp"), exist_ok=True)
    os.makedirs(os.path.join(inbox_dir, "new"), exist_ok=True)
    ignore = os.path.join(os.path.dirname(inbox_dir), ".gitignore")
    if not os.path.exists(ignore):
        try:
            with open(ignore, "x", encoding="utf-8") as handle:
                handle.write("# Created by eventsync: the event log and its state are local to this machine.\n*\n")
        except OSError:
            pass


def pending_files(inbox_dir: str) -> list[str]:
    """Return the paths of complete events waiting in ``inbox_dir``, oldest first."""
    folder = os.path.join(inbox_dir, "new")
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [os.path.join(folder, name) for name in sorted(names) if name.endswith(".json")]


def read_event(path: str) -> dict[str, object] | None:
    """Return the event stored in ``path``, or None when another reader already took it.

    Raises:
        jsoncodec.JSONDecodeFailure: the file is not a JSON object.
    """
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return None
    value = jsoncodec.loads(text)
    if not isinstance(value, dict):
        raise jsoncodec.JSONDecodeFailure(f"invalid inbox file {path!r}: it contains {type(value).__name__}, not an event object")
    return value


def discard(paths: list[str]) -> None:
    """Delete inbox files whose events are committed to the log; missing files are fine."""
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
