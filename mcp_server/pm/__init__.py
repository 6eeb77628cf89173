"""Project management as a projection of the event log.

Projects, tasks, people, dependencies, links from tasks to touchpoints and
generic graph entities live in ``pm_*`` tables that
:class:`~mcp_server.pm.projection.PMProjection` builds from ``project.*``,
``task.*`` and ``entity.*`` events, and from code events at the touchpoints
tasks name. :class:`~mcp_server.pm.service.PMService` implements the commands and
queries that the MCP tools (:mod:`mcp_server.pm.tools`) and ``eventsync pm``
(:mod:`mcp_server.pm.commands`) share. :mod:`mcp_server.pm.graph` contains the
networkx algorithms (readiness, cycles, critical path, bottlenecks).

Importing this package is cheap: the names below load on first use, so the
CLI's parser can import :mod:`mcp_server.pm.commands` without pydantic or
networkx.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PAYLOAD_MODELS",
    "AmbiguousReferenceError",
    "DependencyCycleError",
    "DuplicateTitleError",
    "PMProjection",
    "PMService",
    "TaskGraphError",
]

_LAZY = {
    "PAYLOAD_MODELS": "mcp_server.pm.events",
    "AmbiguousReferenceError": "mcp_server.pm.errors",
    "DependencyCycleError": "mcp_server.pm.errors",
    "DuplicateTitleError": "mcp_server.pm.errors",
    "PMProjection": "mcp_server.pm.projection",
    "PMService": "mcp_server.pm.service",
    "TaskGraphError": "mcp_server.pm.errors",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'mcp_server.pm' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
