"""Helpers for the reconcile and session tests: hook payloads as Claude Code sends them, and event lookups."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

import git
from conftest import HookRun, Project

from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter, StoredEvent


@dataclass
class Session:
    """One Claude Code session firing hooks at a project."""

    project: Project
    session_id: str
    _calls: int = 0

    def _next_tool_use_id(self) -> str:
        self._calls += 1
        return f"toolu_{self.session_id}_{self._calls}"

    def hook(self, hook_event: str, **fields: Any) -> HookRun:
        """Run the hook command for ``hook_event`` and check it exited 0."""
        payload = {
            "session_id": self.session_id, "cwd": str(self.project.root), "hook_event_name": hook_event, **fields
        }
        run = self.project.run_hook(payload)
        assert run.returncode == 0, run.stderr
        return run

    def start(self, source: str = "startup") -> HookRun:
        return self.hook("SessionStart", source=source)

    def bash(self, command: str, *, duration_ms: int | None = None, run: bool = True) -> HookRun:
        """Run ``command`` in the project (unless ``run`` is False), then its PostToolUse hook."""
        if run:
            subprocess.run(command, shell=True, cwd=self.project.root, check=True, capture_output=True)
        extra: dict[str, Any] = {} if duration_ms is None else {"duration_ms": duration_ms}
        return self.hook(
            "PostToolUse", tool_name="Bash", tool_input={"command": command},
            tool_response={"stdout": "", "stderr": "", "interrupted": False, "isImage": False},
            tool_use_id=self._next_tool_use_id(), **extra,
        )

    def edit(self, relative: str, content: str | None = None) -> HookRun:
        """Write ``content`` (when given) the way Edit would, then run its PostToolUse hook."""
        if content is not None:
            self.project.write(relative, content)
        path = str(self.project.root / relative)
        return self.hook(
            "PostToolUse", tool_name="Edit", tool_input={"file_path": path, "old_string": "a", "new_string": "b"},
            tool_response={"filePath": path}, tool_use_id=self._next_tool_use_id(),
        )

    def read(self, relative: str) -> HookRun:
        path = str(self.project.root / relative)
        return self.hook(
            "PostToolUse", tool_name="Read", tool_input={"file_path": path},
            tool_response={"type": "text", "file": {"filePath": path}}, tool_use_id=self._next_tool_use_id(),
        )

    def stop(self, message: str = "Done.") -> HookRun:
        return self.hook("Stop", stop_hook_active=False, last_assistant_message=message)

    def end(self, reason: str = "other") -> HookRun:
        return self.hook("SessionEnd", reason=reason)


def events(runtime: Runtime, pattern: str) -> list[StoredEvent]:
    """Return every event matching ``pattern``, oldest first, after catching up."""
    runtime.catch_up()
    return runtime.log.query(EventFilter(types=(pattern,)), limit=500, descending=False).events


def saved_paths(runtime: Runtime) -> list[tuple[str, str]]:
    """Return (path, tool) of every ``file.saved``, oldest first."""
    return [(str(event.payload["path"]), str(event.payload["tool"])) for event in events(runtime, "file.saved")]


def touchpoints(runtime: Runtime) -> list[tuple[str, str, int]]:
    rows, _ = runtime.list_touchpoints()
    return [(row.name, row.path, row.line) for row in rows]


def commit_all(project: Project, message: str = "commit") -> git.Repo:
    repo = git.Repo(project.root)
    repo.git.add("--all")
    repo.index.commit(message)
    return repo


def hook_output(run: HookRun) -> dict[str, Any] | None:
    """Return the JSON object the hook printed, or None when it printed nothing."""
    if not run.stdout:
        return None
    return json.loads(run.stdout)


def context_of(run: HookRun) -> str:
    """Return the ``additionalContext`` the hook printed, or "" when there is none."""
    output = hook_output(run)
    if output is None:
        return ""
    return str(output["hookSpecificOutput"].get("additionalContext", ""))
