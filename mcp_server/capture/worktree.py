"""The working tree compared with the file states the log recorded.

Edits made through Bash or by other programs fire no ``Edit``/``Write`` hook.
This module finds them for the reconcile projection
(:mod:`mcp_server.modules.reconcile`), which runs in the server and the CLI:

* :class:`Worktree` runs ``git status`` and ``git diff`` through gitpython,
  which lists the files that differ from the index (untracked files
  included, ``.gitignore`` honoured) and those a checkout, pull or reset
  changed, without hashing the whole tree;
* :func:`compare` checks each candidate file against its recorded state
  (content hash, size, modification time) and returns what changed. A file
  counts as changed only when its content hash differs. The file's
  modification and inode change times decide whether the change falls inside
  a given time window (made by the command being reconciled), before it (made
  by another program) or after it (left for a later comparison);
* removed files whose last content reappears under another name, or that
  git paired with a new name, become renames.

gitpython is imported only when a repository is first opened: the capture
hook imports this package and must stay on the standard library.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from dataclasses import dataclass, field
from typing import Any

from mcp_server.capture.payloads import HASH_LIMIT_BYTES, nearest_folder_mtime

__all__ = [
    "GIT_TIMEOUT_SECONDS",
    "Comparison",
    "Finding",
    "KnownFile",
    "StatusEntry",
    "Window",
    "Worktree",
    "WorktreeStatus",
    "compare",
]

logger = logging.getLogger(__name__)

GIT_TIMEOUT_SECONDS = 120
"""Time after which a git command is killed; ``git status`` on a large cold tree can take seconds."""

_NO_OBJECT = "0" * 40


# -- git ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """One path ``git status`` reports, relative to the project root."""

    previous_blob: str | None
    """Git object id of the staged or committed version, None when the file is new to git."""
    untracked: bool


@dataclass(frozen=True, slots=True)
class WorktreeStatus:
    """The parsed output of ``git status`` for the project."""

    head: str | None
    entries: dict[str, StatusEntry]
    renamed: dict[str, str]
    """Staged renames, new path to old path."""


def _object_or_none(object_id: str) -> str | None:
    return None if object_id == _NO_OBJECT else object_id


class Worktree:
    """``git status`` and ``git diff`` of the repository that contains the project root."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._repo: Any = None
        self._toplevel = ""
        self._unavailable = False
        self._warned_names: set[bytes] = set()
        """Names not valid UTF-8 already logged; reconcile runs git status after every Bash command."""

    def _open(self) -> Any:
        if self._repo is not None or self._unavailable:
            return self._repo
        import git  # gitpython takes about 50 ms to import; only processes that reconcile pay it

        try:
            repo = git.Repo(self.root, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            logger.info("%s is not in a git repository; only files already in the log are reconciled", self.root)
            self._unavailable = True
            return None
        if repo.working_tree_dir is None:
            logger.info("%s is in a bare repository; only files already in the log are reconciled", self.root)
            self._unavailable = True
            return None
        # A background status must not take index.lock, or the agent's own git commands could fail on it.
        repo.git.update_environment(GIT_OPTIONAL_LOCKS="0")
        self._repo = repo
        self._toplevel = os.path.realpath(str(repo.working_tree_dir))
        return repo

    def _git(self, command: str, *arguments: str) -> bytes:
        output = getattr(self._repo.git, command)(
            *arguments, stdout_as_string=False, strip_newline_in_stdout=False, kill_after_timeout=GIT_TIMEOUT_SECONDS
        )
        return bytes(output)

    def _pathspec(self) -> list[str]:
        if self._toplevel == self.root:
            return []
        return ["--", os.path.relpath(self.root, self._toplevel)]

    def _project_path(self, raw: bytes) -> str | None:
        """Return git's path ``raw`` relative to the project root, or None outside it or when it is not UTF-8."""
        path = os.fsdecode(raw)
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            # Event payloads are UTF-8 JSON, so the file cannot be recorded until it is renamed.
            if raw not in self._warned_names:
                self._warned_names.add(raw)
                logger.warning("skipped %s: its file name is not valid UTF-8; rename it to record its changes",
                               raw.decode("utf-8", "backslashreplace"))
            return None
        if self._toplevel == self.root:
            return path
        relative = os.path.relpath(os.path.join(self._toplevel, path), self.root)
        return None if relative.startswith(os.pardir) else relative.replace(os.sep, "/")

    def status(self) -> WorktreeStatus | None:
        """Return the project's ``git status``, or None outside a git repository or when git fails."""
        if self._open() is None:
            return None
        import git

        try:
            output = self._git(
                "status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all", "--ignore-submodules=all",
                *self._pathspec(),
            )
        except git.GitCommandError as exc:
            logger.error("git status failed in %s: %s; only files already in the log are reconciled", self.root, exc)
            return None
        return self._parse_status(output)

    def _parse_status(self, output: bytes) -> WorktreeStatus:
        head: str | None = None
        entries: dict[str, StatusEntry] = {}
        renamed: dict[str, str] = {}
        tokens = output.split(b"\0")
        index = 0
        while index < len(tokens):
            token = tokens[index]
            index += 1
            if token.startswith(b"# branch.oid "):
                oid = token[len(b"# branch.oid "):].decode("ascii", "replace")
                head = None if oid == "(initial)" else oid
            elif token.startswith(b"1 "):
                # 1 XY sub mH mI mW hH hI path
                fields = token.split(b" ", 8)
                self._add_entry(entries, fields[8], fields[6].decode(), fields[7].decode())
            elif token.startswith(b"2 "):
                # 2 XY sub mH mI mW hH hI Xscore path, then the original path as the next token
                fields = token.split(b" ", 9)
                new, old = self._project_path(fields[9]), self._project_path(tokens[index])
                index += 1
                if new is not None:
                    entries[new] = StatusEntry(previous_blob=None, untracked=False)
                if old is not None:
                    entries[old] = StatusEntry(previous_blob=_object_or_none(fields[6].decode()), untracked=False)
                if new is not None and old is not None:
                    renamed[new] = old
            elif token.startswith(b"u "):
                # u XY sub m1 m2 m3 mW h1 h2 h3 path: a merge conflict; the file exists in the index
                fields = token.split(b" ", 10)
                self._add_entry(entries, fields[10], fields[7].decode(), fields[8].decode())
            elif token.startswith(b"? "):
                path = self._project_path(token[2:])
                if path is not None:
                    entries[path] = StatusEntry(previous_blob=None, untracked=True)
        return WorktreeStatus(head=head, entries=entries, renamed=renamed)

    def _add_entry(self, entries: dict[str, StatusEntry], raw_path: bytes, head_blob: str, index_blob: str) -> None:
        path = self._project_path(raw_path)
        if path is None:
            return
        # A file added to the index but never committed is new. Otherwise its last version is the
        # staged one, or the committed one when git rm removed it from the index.
        previous = None if head_blob == _NO_OBJECT else _object_or_none(index_blob) or head_blob
        entries[path] = StatusEntry(previous_blob=previous, untracked=False)

    def changed_between(self, old_head: str, new_head: str) -> tuple[set[str], dict[str, str]]:
        """Return the paths two commits differ in and the renames among them (new path to old path)."""
        import git

        try:
            output = self._git("diff", "--name-status", "-z", "-M", old_head, new_head, *self._pathspec())
        except git.GitCommandError as exc:
            logger.warning("git diff %s %s failed in %s: %s; comparing only the working tree",
                           old_head, new_head, self.root, exc)
            return set(), {}
        changed: set[str] = set()
        renames: dict[str, str] = {}
        tokens = [token for token in output.split(b"\0") if token]
        index = 0
        while index < len(tokens):
            status_letter = tokens[index][:1]
            count = 2 if status_letter in (b"R", b"C") else 1
            names = [self._project_path(raw) for raw in tokens[index + 1 : index + 1 + count]]
            index += 1 + count
            kept = [name for name in names if name is not None]
            changed.update(kept)
            if status_letter == b"R" and len(kept) == 2:
                renames[kept[1]] = kept[0]
        return changed, renames


# -- comparing files with their recorded states ------------------------------------------


@dataclass(frozen=True, slots=True)
class KnownFile:
    """The last state of a file that the log recorded."""

    content_hash: str | None
    size: int | None
    mtime_ns: int | None
    present: bool


@dataclass(frozen=True, slots=True)
class Window:
    """The time span a comparison attributes changes to, in ns since the epoch.

    A change newer than ``upper_ns`` is left alone for a later comparison. A
    change at or after ``lower_ns`` counts as made inside the window. When
    ``lower_ns`` is None, as in a sweep for changes made while no session
    ran, no change does.
    """

    lower_ns: int | None
    upper_ns: int

    def contains(self, moment_ns: int) -> bool:
        """Return whether a change at ``moment_ns`` (at most ``upper_ns``) falls inside the window."""
        return self.lower_ns is not None and moment_ns >= self.lower_ns


@dataclass(slots=True)
class Finding:
    """A file whose state differs from the recorded one."""

    path: str
    deleted: bool
    in_window: bool
    created: bool = False
    content_hash: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    previous_hash: str | None = None
    previous_blob: str | None = None
    renamed: str | None = None
    """The other path of a rename: the new name on a removal, the old name on a creation."""


@dataclass(slots=True)
class Comparison:
    """The result of :func:`compare`."""

    findings: list[Finding] = field(default_factory=list)
    refreshed: list[tuple[str, int]] = field(default_factory=list)
    """Files whose content is unchanged but whose modification time moved: (path, new time in ns)."""


def _hash_file(absolute: str, size: int) -> str | None:
    if size > HASH_LIMIT_BYTES:
        return None
    try:
        with open(absolute, "rb") as handle:
            return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def _git_blob_id(absolute: str) -> str | None:
    """Return the id git gives the file's content, to match a removed file's last committed version."""
    try:
        with open(absolute, "rb") as handle:
            data = handle.read(HASH_LIMIT_BYTES + 1)
    except OSError:
        return None
    if len(data) > HASH_LIMIT_BYTES:
        return None
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def compare(
    root: str,
    candidates: list[str],
    known: dict[str, KnownFile],
    entries: dict[str, StatusEntry],
    committed: set[str],
    renames: dict[str, str],
    window: Window,
) -> Comparison:
    """Compare each candidate file with its recorded state.

    Args:
        root: the project root; candidates are relative to it.
        candidates: paths to look at, in the order findings are reported.
        known: recorded states by path.
        entries: the ``git status`` entry of each path it lists.
        committed: paths that changed between two commits; they existed even when git status does not list them.
        renames: renames git reported, new path to old path.
        window: the time span changes are attributed to.
    """
    comparison = Comparison()
    for path in candidates:
        _inspect(comparison, root, path, known.get(path), entries.get(path), path in committed, window)
    _pair_renames(comparison.findings, renames, root)
    return comparison


def _inspect(
    comparison: Comparison, root: str, path: str, known: KnownFile | None, entry: StatusEntry | None,
    committed: bool, window: Window,
) -> None:
    absolute = os.path.join(root, path)
    try:
        file_status = os.stat(absolute)
    except OSError:
        file_status = None

    if file_status is None or not stat.S_ISREG(file_status.st_mode):
        if known is not None:
            existed = known.present
        else:
            existed = committed or (entry is not None and not entry.untracked)
        if not existed:
            return
        # A removal leaves no file time, but the folder's time records when its last entry changed.
        folder_mtime = nearest_folder_mtime(absolute, root)
        if folder_mtime > window.upper_ns:
            return
        comparison.findings.append(Finding(
            path, deleted=True, in_window=window.contains(folder_mtime),
            previous_hash=known.content_hash if known else None,
            previous_blob=entry.previous_blob if entry else None,
        ))
        return

    # The inode change time moves on rename and creation too, where mv, cp -p and tar keep the
    # modification time, so the later of the two is when the file last changed place or content.
    moment_ns = max(file_status.st_mtime_ns, file_status.st_ctime_ns)
    if moment_ns > window.upper_ns:
        return
    recorded = known if known is not None and known.present else None
    if recorded and (recorded.size, recorded.mtime_ns) == (file_status.st_size, file_status.st_mtime_ns):
        return
    content_hash = _hash_file(absolute, file_status.st_size)
    if recorded and content_hash is not None and content_hash == recorded.content_hash:
        comparison.refreshed.append((path, file_status.st_mtime_ns))
        return
    if known is not None:
        created = not known.present
    else:
        created = entry is None or entry.untracked or entry.previous_blob is None
    comparison.findings.append(Finding(
        path, deleted=False, in_window=window.contains(moment_ns), created=created,
        content_hash=content_hash, size=file_status.st_size, mtime_ns=file_status.st_mtime_ns,
    ))


def _pair_renames(findings: list[Finding], hinted: dict[str, str], root: str) -> None:
    """Link each removed file to the new file git paired with it, or that contains its last content."""
    removed = {finding.path: finding for finding in findings if finding.deleted}
    if not removed:
        return
    written = {finding.path: finding for finding in findings if not finding.deleted}
    created = {path: finding for path, finding in written.items() if finding.created}

    def link(old: Finding, new: Finding) -> None:
        old.renamed, new.renamed = new.path, old.path
        new.in_window = old.in_window  # mv keeps the file's time, so the removal dates the rename
        removed.pop(old.path)
        created.pop(new.path, None)

    for new_path, old_path in sorted(hinted.items()):
        if new_path in written and old_path in removed and written[new_path].renamed is None:
            link(removed[old_path], written[new_path])

    by_hash: dict[str, Finding] = {}
    for finding in created.values():
        if finding.content_hash:
            by_hash.setdefault(finding.content_hash, finding)
    for old in sorted(removed.values(), key=lambda finding: finding.path):
        new = by_hash.get(old.previous_hash or "")
        if new is not None and new.path in created:
            link(old, new)

    by_blob: dict[str, Finding] = {}
    for old in sorted(removed.values(), key=lambda finding: finding.path):
        if not old.previous_blob:
            continue
        if not by_blob:
            for finding in created.values():
                blob = _git_blob_id(os.path.join(root, finding.path))
                if blob:
                    by_blob.setdefault(blob, finding)
        new = by_blob.get(old.previous_blob)
        if new is not None and new.path in created:
            link(old, new)
