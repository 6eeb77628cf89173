"""Project root, data folder and project-relative paths.

Every eventsync process (hook, server, CLI) agrees on two folders: the project
root, which paths in events are relative to, and the data folder holding the
event log, the capture inbox and ``hook.log``. This module uses only the
standard library because the capture hook imports it on every tool call.
"""

from __future__ import annotations

import os

from mcp_server.errors import PathOutsideProjectError

__all__ = [
    "DATA_DIR_NAME",
    "data_dir",
    "fallback_spill_dir",
    "find_project_root",
    "resolve_in_project",
    "to_project_path",
]

DATA_DIR_NAME = ".eventsync"
"""Folder under the project root that holds the log, inbox and hook log."""


def find_project_root(cwd: str | None = None, environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """Return the project root as an absolute, symlink-free path.

    The root is ``CLAUDE_PROJECT_DIR`` when it names a folder (Claude Code sets
    it for hooks and stdio MCP servers, and it does not follow ``cd``), else the
    nearest parent of ``cwd`` holding ``.git``, else ``cwd`` itself.
    """
    env = os.environ if environ is None else environ
    declared = env.get("CLAUDE_PROJECT_DIR", "")
    if declared and os.path.isdir(declared):
        return os.path.realpath(declared)

    start = os.path.realpath(cwd if cwd is not None else os.getcwd())
    folder = start
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return start
        folder = parent


def data_dir(root: str, environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """Return the data folder: ``EVENTSYNC_HOME`` if set, else ``<root>/.eventsync``."""
    env = os.environ if environ is None else environ
    moved = env.get("EVENTSYNC_HOME", "")
    if moved:
        return os.path.realpath(os.path.expanduser(moved))
    return os.path.join(root, DATA_DIR_NAME)


def fallback_spill_dir(root: str, environ: os._Environ[str] | dict[str, str] | None = None) -> str:
    """Return the per-user folder that receives events when the data folder is not writable.

    The folder name is a hash of the project root, so readers of one project
    drain only that project's spilled events.
    """
    import hashlib  # imported here: the hook reaches this only when its data folder fails

    env = os.environ if environ is None else environ
    state_home = env.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    digest = hashlib.sha256(root.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(state_home, "eventsync", "spill", digest)


def to_project_path(root: str, path: str) -> str | None:
    """Return ``path`` relative to ``root`` with ``/`` separators, or None if it lies outside.

    Relative inputs are taken relative to the root. The result never starts
    with ``..`` and is never absolute, so it is safe to join back onto the root.
    """
    absolute = os.path.realpath(os.path.join(root, path))
    try:
        relative = os.path.relpath(absolute, root)
    except ValueError:  # a different drive on Windows
        return None
    if relative == os.curdir or relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return None
    return relative.replace(os.sep, "/")


def resolve_in_project(root: str, project_path: str) -> str:
    """Return the absolute path of a project-relative path, refusing any that escape the root.

    Raises:
        PathOutsideProjectError: ``project_path`` resolves outside ``root``.
    """
    relative = to_project_path(root, project_path)
    if relative is None:
        raise PathOutsideProjectError(
            f"path {project_path!r} resolves outside the project root {root!r}; "
            "eventsync reads only files inside the project"
        )
    return os.path.join(root, relative)
