"""``eventsync demo``: the main job end to end in a temporary project.

It replays two hook payloads recorded from a real Claude Code session (a
``Write`` that creates ``src/a.py`` with a touchpoint, then an ``Edit``), with
their paths moved into a fresh git repository, through the hook command that
``eventsync init`` configured. Then it starts ``eventsync serve`` as Claude
Code would (stdio, legacy initialize handshake) and prints what
``list_touchpoints`` and ``query_events`` return.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from importlib import resources
from typing import Any

import anyio

__all__ = ["run_demo"]

_RECORDED_ROOT = "/tmp/e2e-proj"
_STEPS = (
    ("write.json", "# @touchpoint demo Entry point of the demo module\ndef f():\n    return 1\n"),
    ("edit.json", "# @touchpoint demo Entry point of the demo module\ndef f():\n    return 2\n\n\n# @touchpoint demo-helper\ndef g():\n    return f()\n"),
)


def _recorded_payload(name: str, root: str) -> str:
    text = resources.files("mcp_server").joinpath("demo_payloads", name).read_text(encoding="utf-8")
    return text.replace(_RECORDED_ROOT, root)


def _hook_command(root: str) -> str:
    with open(os.path.join(root, ".claude", "settings.json"), encoding="utf-8") as handle:
        settings = json.load(handle)
    return str(settings["hooks"]["PostToolUse"][-1]["hooks"][0]["command"])


def _feed_hook(root: str) -> None:
    command = _hook_command(root)
    environment = {**os.environ, "CLAUDE_PROJECT_DIR": root}
    for payload_name, content in _STEPS:
        target = os.path.join(root, "src", "a.py")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(content)
        completed = subprocess.run(
            ["/bin/sh", "-c", command], input=_recorded_payload(payload_name, root).encode(),
            capture_output=True, env=environment, cwd=root, check=False,
        )
        print(f"hook <- {payload_name}: exit {completed.returncode}, stdout {completed.stdout!r}")


async def _ask_server(root: str) -> dict[str, Any]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    parameters = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server", "serve"], env={"CLAUDE_PROJECT_DIR": root}, cwd=root
    )
    async with Client(parameters, mode="legacy") as client:
        tools = await client.list_tools()
        touchpoints = await client.call_tool("list_touchpoints", {})
        events = await client.call_tool("query_events", {"type": "file.saved"})
        return {
            "tools": sorted(tool.name for tool in tools.tools),
            "list_touchpoints": touchpoints.structured_content,
            "query_events": events.structured_content,
        }


def run_demo() -> int:
    """Run the demo in a temporary project and print the results; return the exit status."""
    import git

    from mcp_server.install import init_project

    with tempfile.TemporaryDirectory(prefix="eventsync-demo-") as folder:
        root = os.path.realpath(folder)
        git.Repo.init(root)
        init_project(root)
        print(f"project: {root} (git repository, eventsync installed with 'eventsync init')")
        _feed_hook(root)
        answers = anyio.run(_ask_server, root)

        print("\nMCP tools:", ", ".join(answers["tools"]))
        print("\nlist_touchpoints ->")
        print(json.dumps(answers["list_touchpoints"], indent=2))
        events = answers["query_events"] or {}
        summary = [
            {key: event[key] for key in ("position", "type", "source")} | {"path": event["payload"].get("path"),
             "tool": event["payload"].get("tool"), "session_id": event["metadata"].get("session_id")}
            for event in events.get("events", [])
        ]
        print("\nquery_events {'type': 'file.saved'} ->")
        print(json.dumps({"total": events.get("total"), "events": summary}, indent=2))
    return 0
