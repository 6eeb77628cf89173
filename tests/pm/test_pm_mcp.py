"""The project-management tools over stdio, driven by the SDK client in legacy mode as Claude Code drives it."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from conftest import Project
from pm_support import store_with_cycle

pytestmark = pytest.mark.anyio

PM_TOOLS = {"create_project", "add_task", "update_task", "assign_task", "complete_task", "project_status"}

HANG_LIMIT = 20
"""Seconds one call may take before the test fails as hung; far above the milliseconds it needs."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def _client(root: Path) -> AsyncIterator[Client]:
    # No start-up index, so every code change the tests expect comes from the hook events they send.
    env = {"CLAUDE_PROJECT_DIR": str(root), "XDG_STATE_HOME": os.environ.get("XDG_STATE_HOME", ""),
           "EVENTSYNC_AUTO_INDEX": "0"}
    parameters = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server", "serve"], env=env,
                                       cwd=str(root))
    async with Client(parameters, mode="legacy") as client:
        yield client


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    with anyio.fail_after(HANG_LIMIT):
        result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def _refused(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    with anyio.fail_after(HANG_LIMIT):
        result = await client.call_tool(tool, arguments)
    assert result.is_error
    return str(result.content[0].text)  # type: ignore[union-attr]


async def _ready(client: Client) -> list[str]:
    return [task["title"] for task in (await _call(client, "project_status", {"project": "shop"}))["ready"]]


async def test_case_over_stdio(project: Project) -> None:
    with anyio.fail_after(120):
        async with _client(project.root) as client:
            tools = await client.list_tools()
            await _call(client, "create_project", {"title": "shop"})
            for title in ("A", "B", "C"):
                await _call(client, "add_task", {"project": "shop", "title": title})
            first = await _call(client, "update_task", {"task": "A", "depends_on": ["B"]})
            second = await _call(client, "update_task", {"task": "B", "depends_on": ["C"]})
            closing = await _refused(client, "update_task", {"task": "C", "depends_on": ["A"]})
            itself = await _refused(client, "update_task", {"task": "A", "depends_on": ["A"]})
            status = await _call(client, "project_status", {"project": "shop"})
            ready_at_start = await _ready(client)
            after_c = await _call(client, "complete_task", {"task": "C"})
            ready_after_c = await _ready(client)
            await _call(client, "complete_task", {"task": "B", "project": "shop"})
            ready_after_b = await _ready(client)

    assert PM_TOOLS <= {tool.name for tool in tools.tools}
    assert all(len(tool.description or "") < 400 for tool in tools.tools if tool.name in PM_TOOLS)
    assert first["task"]["depends_on"] == ["b"]
    assert second["task"]["depends_on"] == ["c"]
    assert "cycle" in closing
    assert "C → A → B → C" in closing
    assert "itself" in itself
    assert {(edge["task"], edge["depends_on"]) for edge in status["dependencies"]} == {("a", "b"), ("b", "c")}
    assert ready_at_start == ["C"]
    assert [ref["title"] for ref in after_c["unblocked"]] == ["B"]
    assert ready_after_c == ["B"]
    assert ready_after_b == ["A"]


async def test_stored_cycle_over_stdio(project: Project, tmp_path: Path) -> None:
    root = store_with_cycle(project.root, tmp_path)

    with anyio.fail_after(120):
        async with _client(root) as client:
            status = await _call(client, "project_status", {"project": "imported"})
            again = await _call(client, "project_status", {"project": "imported"})
            tools = await client.list_tools()

    assert [task["id"] for task in status["ready"]] == ["z"]
    assert status["cycles"] == [["x", "y", "x"]]
    [warning] = status["warnings"]
    assert "X → Y → X" in warning
    assert again["ready"] == status["ready"]
    assert PM_TOOLS <= {tool.name for tool in tools.tools}


async def test_code_changes_reach_status(project: Project) -> None:
    project.write("src/shop.py", "# @touchpoint checkout-total Sums the cart\ndef total():\n    return 0\n")

    with anyio.fail_after(120):
        async with _client(project.root) as client:
            await _call(client, "create_project", {"title": "shop"})
            added = await _call(client, "add_task", {"project": "shop", "title": "Fix totals",
                                                     "touchpoints": ["checkout-total"], "assignee": "claude"})
            project.run_hook({"session_id": "s-pm", "hook_event_name": "PostToolUse", "tool_name": "Write",
                              "tool_input": {"file_path": str(project.root / "src/shop.py")},
                              "tool_use_id": "toolu_pm"})
            with anyio.fail_after(HANG_LIMIT):
                while not (status := await _call(client, "project_status", {"project": "shop"}))["recent_code_changes"]:
                    await anyio.sleep(0.05)

    assert added["task"]["assignee"] == "claude"
    [change] = status["recent_code_changes"]
    assert (change["task"], change["touchpoint"], change["path"]) == ("fix-totals", "checkout-total", "src/shop.py")
    assert change["change"] == "added"
    assert status["in_progress"] == [{"id": "fix-totals", "title": "Fix totals", "assignee": "claude"}]
