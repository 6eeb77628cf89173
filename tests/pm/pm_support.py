"""Helpers shared by the project-management tests: a store that already contains a dependency cycle."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import git

from mcp_server.install import init_project
from mcp_server.runtime import Runtime


def store_with_cycle(source_root: Path, tmp_path: Path) -> Path:
    """Build project ``imported`` (tasks X, Y, Z), copy the store into a new project, add X⇄Y with sqlite3.

    The dependency rows go straight into the copy's tables, as after a bad
    import; no event in the log mentions them. Returns the new project's root.
    """
    source = Runtime(str(source_root), environ={})
    try:
        source.pm.create_project("imported")
        for title in ("X", "Y", "Z"):
            source.pm.add_task("imported", title)
    finally:
        source.close()

    target = tmp_path / "imported"
    target.mkdir()
    git.Repo.init(target)
    init_project(str(target))
    copy = target / ".eventsync" / "events.db"
    copy.parent.mkdir(exist_ok=True)
    with sqlite3.connect(source_root / ".eventsync" / "events.db") as original, sqlite3.connect(copy) as destination:
        original.backup(destination)
        destination.executemany(
            "INSERT INTO pm_dependencies (task_id, depends_on, created_at, event_id) VALUES (?, ?, '', 'import')",
            [("x", "y"), ("y", "x")],
        )
    original.close()
    destination.close()
    return target
