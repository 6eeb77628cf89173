"""Full index of a project: bring the touchpoint index in step with every file on disk.

The touchpoint index is a projection of the event log, so the full index does
not write index rows itself. It lists the project's files (``git ls-files -co
--exclude-standard`` in a git repository, else a walk that skips
:data:`SKIPPED_DIRECTORIES`), and appends one ``code.modified`` event, origin
``"index"``, for each file whose cache key differs from the index's record,
plus one ``code.deleted`` for each indexed file that is gone. The runtime's
projections then process those events as they process hook events, and a
rebuild replays them to the same result. A file with no marker bytes and no
indexed rows would index to nothing, so it gets no event.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from mcp_server import paths
from mcp_server.events import make_event
from mcp_server.touchpoints import EXTRACTOR_VERSION, MAX_NOTEBOOK_BYTES, language_for_path

if TYPE_CHECKING:
    from mcp_server.runtime import Runtime

__all__ = ["SKIPPED_DIRECTORIES", "IndexReport", "TerminalProgress", "index_project", "project_files"]

logger = logging.getLogger(__name__)

SKIPPED_DIRECTORIES = frozenset({".git", "node_modules", ".venv", "venv", ".eventsync", "__pycache__", ".tox"})
"""Folders never indexed, even when git does not ignore them: tool state and installed dependencies."""

EVENT_BATCH = 500
"""Events appended, then processed, per step, so progress moves and one transaction stays small."""

_MARKER = b"@touchpoint"

_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
"""Flags for opening a listed file; O_NONBLOCK does not exist on Windows."""

_running = threading.Lock()
"""Held by the full index running in this process. The server may start one at start-up while a
tool call requests another; if both ran at once, each would append an event for every stale file."""

Progress = Callable[[int, int, str], None]
"""Callback ``(done, total, phase)``; phase is ``"scan"`` or ``"process"``."""


@dataclass(frozen=True, slots=True)
class IndexReport:
    """Outcome of one full index.

    Attributes:
        files: Files listed with a known language.
        changed: Files whose index record was out of date; one ``code.modified`` each.
        deleted: Files indexed or listed by git that are no longer on disk; one ``code.deleted`` each
            for those the index still had.
        unreadable: Files that could not be read, as ``(path, reason)``. A name that is not valid
            UTF-8 is shown with backslash escapes for its bytes.
    """

    files: int
    changed: int
    deleted: int
    unreadable: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, object]:
        """Return the report as the CLI's ``--json`` and the MCP tool show it."""
        return {
            "files": self.files,
            "changed": self.changed,
            "deleted": self.deleted,
            "unreadable": [{"path": path, "reason": reason} for path, reason in self.unreadable],
        }


def project_files(root: str) -> list[str]:
    """Return the project-relative paths of the files to index, sorted, with ``/`` separators."""
    listed = _git_files(root)
    if listed is None:
        listed = list(_walk(root))
    return sorted(
        path for path in listed
        if language_for_path(path) is not None and SKIPPED_DIRECTORIES.isdisjoint(path.split("/")[:-1])
    )


def _inside_project(root: str, path: str) -> bool:
    """Return False for a symbolic link that leads outside the project, which is never read."""
    absolute = os.path.join(root, path)
    return not os.path.islink(absolute) or paths.to_project_path(root, absolute) is not None


def _git_files(root: str) -> list[str] | None:
    try:
        import git
    except ImportError:
        return None
    try:
        repository = git.Repo(root, search_parent_directories=False)
        output = repository.git.ls_files("-co", "--exclude-standard", "-z")
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError, git.GitCommandNotFound):
        return None
    return [path for path in dict.fromkeys(output.split("\0")) if path]


def _walk(root: str) -> Iterator[str]:
    # os.walk yields every folder as root + separator + relative path, so slicing is
    # enough; os.path.relpath per folder cost a third of the walk on a 14,000-folder tree.
    start = len(os.path.join(root, ""))
    for folder, directories, files in os.walk(root):
        directories[:] = sorted(name for name in directories if name not in SKIPPED_DIRECTORIES)
        relative = folder[start:].replace(os.sep, "/")
        prefix = relative + "/" if relative else ""
        for name in files:
            yield prefix + name


def index_project(runtime: Runtime, *, progress: Progress | None = None) -> IndexReport:
    """Append events for every file whose index record is stale, and process them.

    Args:
        runtime: The project's runtime; its projections are caught up first.
        progress: Called after each file is read and after each batch is processed.
    """
    # NOTE: the lock covers one process only; `eventsync index` run beside a server that is
    # indexing can still append a second event for a file.
    with _running:
        return _index_project(runtime, progress)


def _index_project(runtime: Runtime, progress: Progress | None) -> IndexReport:
    runtime.catch_up()
    connection = runtime.log.connection
    fingerprint = runtime.touchpoints.fingerprint
    records = {
        str(path): (content_hash, version, configuration)
        for path, content_hash, version, configuration in connection.execute(
            "SELECT path, content_hash, extractor_version, configuration FROM touchpoint_files"
        )
    }
    with_rows = {str(row[0]) for row in connection.execute("SELECT DISTINCT path FROM touchpoints")}

    unreadable: list[tuple[str, str]] = []
    files = _valid_names(
        [path for path in project_files(runtime.root) if _inside_project(runtime.root, path)], unreadable
    )
    events: list[dict[str, object]] = []
    missing: list[str] = []
    for done, path in enumerate(files, 1):
        event = _stale_file_event(
            runtime.root, path, records.get(path), path in with_rows, fingerprint, unreadable, missing
        )
        if event is not None:
            events.append(event)
        if progress is not None:
            progress(done, len(files), "scan")
    changed = len(events)

    # A file in the index that the listing skipped (binary, unknown language, ignored) is
    # not deleted; only a path that is gone from disk is.
    deleted = [
        path for path in sorted(records.keys() | with_rows)
        if not os.path.lexists(os.path.join(runtime.root, path))
    ]
    events += [make_event("code.deleted", {"path": path, "origin": "index"}, source="index") for path in deleted]
    # git lists a tracked file until the deletion is committed, and the index may have dropped it
    # already (the hook or reconcile recorded the deletion), so it is counted without a second event.
    deleted_or_missing = sorted(set(deleted).union(missing))
    _append_and_process(runtime, events, progress)
    logger.info("indexed %d files: %d changed, %d deleted", len(files), changed, len(deleted_or_missing))
    return IndexReport(len(files), changed, len(deleted_or_missing), tuple(unreadable))


def _valid_names(listed: list[str], unreadable: list[tuple[str, str]]) -> list[str]:
    """Return the paths of ``listed`` that UTF-8 can encode; add the others to ``unreadable``.

    Names that are not valid UTF-8 arrive decoded with surrogateescape. Event
    payloads are UTF-8 JSON, so such a file cannot be recorded until it is renamed.
    """
    valid: list[str] = []
    for path in listed:
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            escaped = os.fsencode(path).decode("utf-8", "backslashreplace")
            logger.warning("skipped %s: its file name is not valid UTF-8; rename it to index it", escaped)
            unreadable.append((escaped, "the file name is not valid UTF-8; rename the file to index it"))
            continue
        valid.append(path)
    return valid


def _stale_file_event(
    root: str,
    path: str,
    record: tuple[str | None, int, str] | None,
    has_rows: bool,
    fingerprint: str,
    unreadable: list[tuple[str, str]],
    missing: list[str],
) -> dict[str, object] | None:
    """Return a ``code.modified`` event for ``path`` when its index record is stale, else None.

    A path that is gone from disk is added to ``missing``, and one that cannot be read to ``unreadable``.
    """
    absolute = os.path.join(root, path)
    try:
        # O_NONBLOCK: opening a named pipe would otherwise wait for a writer.
        with open(os.open(absolute, _READ_FLAGS), "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                unreadable.append((path, "not a regular file" + _special_kind(status.st_mode)))
                return None
            size = status.st_size
            # Too large for any limit: the projection records the skip without reading it.
            data = handle.read() if size <= MAX_NOTEBOOK_BYTES else b""
    except FileNotFoundError as exc:
        if os.path.lexists(absolute):
            unreadable.append((path, f"{exc.strerror}: it is a symbolic link to a missing file"))
        else:
            missing.append(path)
        return None
    except OSError as exc:
        unreadable.append((path, exc.strerror or str(exc)))
        return None
    if size <= MAX_NOTEBOOK_BYTES and record is None and not has_rows and _MARKER not in data:
        return None

    content_hash = "sha256:" + hashlib.sha256(data).hexdigest() if data or size == 0 else None
    if record is not None and record == (content_hash, EXTRACTOR_VERSION, fingerprint):
        return None
    payload: dict[str, object] = {"path": path, "size": size, "origin": "index"}
    if content_hash is not None:
        payload["content_hash"] = content_hash
    return make_event("code.modified", payload, source="index")


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return " (named pipe)"
    if stat.S_ISSOCK(mode):
        return " (socket)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return " (device)"
    if stat.S_ISDIR(mode):
        return " (directory)"
    return ""


def _append_and_process(runtime: Runtime, events: list[dict[str, object]], progress: Progress | None) -> None:
    for start in range(0, len(events), EVENT_BATCH):
        runtime.log.append(events[start : start + EVENT_BATCH])
        runtime.catch_up()
        if progress is not None:
            progress(min(start + EVENT_BATCH, len(events)), len(events), "process")
    if not events:
        runtime.catch_up()


class TerminalProgress:
    """A one-line progress bar on a terminal, redrawn in place; silent when the stream is not a TTY."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.width = width
        self._last: tuple[str, int] | None = None

    def __call__(self, done: int, total: int, phase: str) -> None:
        """Redraw the bar when the shown percentage changes."""
        if not self.enabled or total <= 0:
            return
        percent = done * 100 // total
        if self._last == (phase, percent):
            return
        self._last = (phase, percent)
        filled = self.width * done // total
        label = "reading files" if phase == "scan" else "indexing"
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{label:<13} [{bar}] {percent:3d}% {done}/{total}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
