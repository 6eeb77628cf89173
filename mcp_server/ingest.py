"""Moving captured events from the inbox into the log.

Hooks write events to ``<data folder>/inbox`` (or, when that is not writable,
to the per-user spill folder; see :mod:`mcp_server.capture.hook`). Every
process that reads the log calls :func:`ingest_pending` first, so an answer
never depends on whether a server was running when the hook fired. Files are
stored in name order (their names start with the capture time) in batches,
one transaction each, and deleted only after their batch commits. A file that
is not a valid event is moved to ``inbox/rejected`` and logged, never retried
forever and never deleted unseen.
"""

from __future__ import annotations

import logging
import os

from mcp_server import inbox, jsoncodec, paths
from mcp_server.errors import InvalidEventError
from mcp_server.store.base import validate_event
from mcp_server.store.sqlite import SQLiteEventLog

__all__ = ["INGEST_BATCH", "ingest_pending", "pending_files", "rejected_dir", "rejected_files"]

logger = logging.getLogger(__name__)

INGEST_BATCH = 500
"""Events stored per transaction; bounds how long one ingest holds the write lock."""


def _inbox_dirs(root: str, data_dir: str) -> list[str]:
    return [os.path.join(data_dir, inbox.INBOX_DIR_NAME), paths.fallback_spill_dir(root)]


def rejected_dir(data_dir: str) -> str:
    """Return the folder that keeps inbox files that were not valid events."""
    return os.path.join(data_dir, inbox.INBOX_DIR_NAME, "rejected")


def rejected_files(data_dir: str) -> list[str]:
    """Return the names of the inbox files moved aside as invalid, oldest first."""
    try:
        return sorted(name for name in os.listdir(rejected_dir(data_dir)) if name.endswith(".json"))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _reject(path: str, data_dir: str, reason: str) -> None:
    rejected = rejected_dir(data_dir)
    logger.warning("inbox file %s is not a valid event (%s); moved to %s", path, reason, rejected)
    try:
        os.makedirs(rejected, exist_ok=True)
        os.replace(path, os.path.join(rejected, os.path.basename(path)))
    except OSError as exc:
        logger.error("could not move invalid inbox file %s to %s: %s", path, rejected, exc)


def _load_valid(files: list[str], data_dir: str) -> tuple[list[dict[str, object]], list[str]]:
    events: list[dict[str, object]] = []
    taken: list[str] = []
    for path in files:
        try:
            event = inbox.read_event(path)
            if event is None:
                continue
            validate_event(event)
        except (jsoncodec.JSONDecodeFailure, InvalidEventError) as exc:
            _reject(path, data_dir, str(exc))
            continue
        except OSError as exc:
            logger.warning("could not read inbox file %s: %s; will retry on the next ingest", path, exc)
            continue
        events.append(event)
        taken.append(path)
    return events, taken


def pending_files(root: str, data_dir: str) -> list[str]:
    """Return the inbox and spill files waiting to be ingested, oldest first."""
    return sorted(
        (path for folder in _inbox_dirs(root, data_dir) for path in inbox.pending_files(folder)),
        key=os.path.basename,
    )


def ingest_pending(log: SQLiteEventLog, root: str, data_dir: str) -> int:
    """Store every event waiting in the inbox and spill folders; return how many were new.

    Raises:
        StoreError: the log could not be written; the inbox files stay for the next try.
    """
    files = pending_files(root, data_dir)
    stored = 0
    for start in range(0, len(files), INGEST_BATCH):
        events, taken = _load_valid(files[start : start + INGEST_BATCH], data_dir)
        stored += len(log.append(events))
        inbox.discard(taken)
    if stored:
        logger.debug("ingested %d captured events from the inbox", stored)
    return stored
