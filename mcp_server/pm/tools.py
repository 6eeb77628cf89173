"""The project-management MCP tools: six small tools over :class:`~mcp_server.pm.service.PMService`.

Each tool runs its service call in a worker thread through the server's
``_call``, which turns eventsync errors (a rejected cycle, an unknown task)
into tool errors, so the agent receives ``isError: true`` with the message.
Results are the pydantic models of :mod:`mcp_server.pm.results`, capped by
the service. Generic graph entities have no tool of their own: agents emit
``entity.created|updated|deleted`` with ``emit_event``, people use
``eventsync pm entity``.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations

from mcp_server.pm.results import ProjectOut, ProjectStatusOut, TaskChangeOut

__all__ = ["register_tools"]


def _context(ctx: Context[Any, Any]) -> tuple[Any, str | None]:
    state = ctx.request_context.lifespan_context
    return state.runtime.pm, state.session_id


def register_tools(server: MCPServer[Any]) -> None:
    """Add the project-management tools to ``server``."""
    # Imported here because mcp_server.server imports this module while it loads.
    from mcp_server.server import _call

    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
    status = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

    @server.tool(annotations=writes)
    async def create_project(ctx: Context[Any, Any], title: str, description: str = "") -> ProjectOut:
        """Create a project to plan tasks in; its id is a slug of the title."""
        pm, session_id = _context(ctx)
        result: ProjectOut = await _call(pm.create_project, title, description=description, source="mcp",
                                         session_id=session_id)
        return result

    @server.tool(annotations=writes)
    async def add_task(
        ctx: Context[Any, Any],
        project: str,
        title: str,
        depends_on: list[str] | None = None,
        touchpoints: list[str] | None = None,
        estimate: float | None = None,
        assignee: str | None = None,
        description: str = "",
    ) -> TaskChangeOut:
        """Add a task to a project (id or title); depends_on lists tasks to finish first, touchpoints the @touchpoint names it changes, estimate is in hours.

        A dependency that would form a cycle is rejected with the loop named.
        """
        pm, session_id = _context(ctx)
        result: TaskChangeOut = await _call(
            pm.add_task, project, title, depends_on=depends_on or [], touchpoints=touchpoints or [],
            estimate=estimate, assignee=assignee, description=description, source="mcp", session_id=session_id,
        )
        return result

    @server.tool(annotations=writes)
    async def update_task(
        ctx: Context[Any, Any],
        task: str,
        project: str | None = None,
        depends_on: list[str] | None = None,
        remove_depends_on: list[str] | None = None,
        touchpoints: list[str] | None = None,
        estimate: float | None = None,
        title: str | None = None,
    ) -> TaskChangeOut:
        """Add or remove dependencies of a task (id or title), link more touchpoints, or change its estimate or title.

        A dependency on the task itself, or one that would close a cycle, is rejected with the loop named.
        """
        pm, session_id = _context(ctx)
        result: TaskChangeOut = await _call(
            pm.update_task, task, project=project, depends_on=depends_on or [],
            remove_depends_on=remove_depends_on or [], touchpoints=touchpoints or [], estimate=estimate, title=title,
            source="mcp", session_id=session_id,
        )
        return result

    @server.tool(annotations=writes)
    async def assign_task(ctx: Context[Any, Any], task: str, assignee: str, project: str | None = None) -> TaskChangeOut:
        """Assign an open task (id or title) to a person or agent by name."""
        pm, session_id = _context(ctx)
        result: TaskChangeOut = await _call(pm.assign_task, task, assignee, project=project, source="mcp",
                                            session_id=session_id)
        return result

    @server.tool(annotations=writes)
    async def complete_task(ctx: Context[Any, Any], task: str, project: str | None = None) -> TaskChangeOut:
        """Mark a task (id or title) completed; the result lists the tasks it unblocked and the project's progress."""
        pm, session_id = _context(ctx)
        result: TaskChangeOut = await _call(pm.complete_task, task, project=project, source="mcp",
                                            session_id=session_id)
        return result

    @server.tool(annotations=status)
    async def project_status(ctx: Context[Any, Any], project: str) -> ProjectStatusOut:
        """Show a project's progress, ready tasks, blocked tasks with their blockers, bottlenecks and dependency-cycle warnings.

        Also lists recent code changes at the touchpoints its tasks name.
        """
        pm, _ = _context(ctx)
        result: ProjectStatusOut = await _call(pm.project_status, project)
        return result
