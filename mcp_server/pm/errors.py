"""Errors of the project-management module.

Each derives from :class:`~mcp_server.errors.EventsyncError`, so the MCP tools
turn them into tool errors and the CLI into exit status 1. A missing project,
task or entity raises the shared :class:`~mcp_server.errors.NotFoundError`;
an invalid payload raises :class:`~mcp_server.errors.InvalidEventError`::

    EventsyncError
    └── TaskGraphError              a command would break the project graph
        ├── DependencyCycleError    a dependency would close a loop, or name the task itself
        ├── AmbiguousReferenceError a title matches several projects or tasks
        └── DuplicateTitleError     the title is already taken in that scope
"""

from __future__ import annotations

from mcp_server.errors import EventsyncError

__all__ = ["AmbiguousReferenceError", "DependencyCycleError", "DuplicateTitleError", "TaskGraphError"]


class TaskGraphError(EventsyncError):
    """Raised when a project-management command would leave the project graph inconsistent."""


class DependencyCycleError(TaskGraphError):
    """Raised when a dependency would make a task wait, directly or through others, on itself."""

    def __init__(self, message: str, loop: list[str]) -> None:
        super().__init__(message)
        self.loop = loop
        """Task ids around the loop, the first repeated at the end; ``[task, task]`` for a self-dependency."""


class AmbiguousReferenceError(TaskGraphError):
    """Raised when a title given in place of an id matches more than one project or task."""


class DuplicateTitleError(TaskGraphError):
    """Raised when a project or task title is already used where titles must be unique."""
