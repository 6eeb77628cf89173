"""Installing eventsync into a project: Claude Code hook settings and the MCP server entry.

``eventsync init PATH`` merges two files and leaves everything else in them
untouched:

* ``PATH/.claude/settings.json`` gets one ``PostToolUse`` hook group that runs
  the capture hook for the file tools and ``Bash``. The interpreter is named
  by absolute path (a version-manager shim would add about 150 ms per tool
  call) and every path is double-quoted, so folders with spaces work.
* ``PATH/.mcp.json`` gets the ``eventsync`` stdio server.

Running ``init`` again replaces eventsync's own entries instead of adding
copies.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from mcp_server.errors import ConfigurationError

__all__ = ["HOOK_MATCHER", "HOOK_TIMEOUT_SECONDS", "SERVER_NAME", "InstallResult", "hook_command", "init_project"]

HOOK_MATCHER = "Write|Edit|MultiEdit|NotebookEdit|Bash"
"""Tools whose PostToolUse the hook captures; an exact-name list, so ``Edit`` does not match ``NotebookEdit`` twice."""

HOOK_TIMEOUT_SECONDS = 10
"""Claude Code kills a hook after this many seconds; the hook itself takes milliseconds."""

SERVER_NAME = "eventsync"

_HOOK_SCRIPT = "hook_entry.py"


@dataclass(frozen=True, slots=True)
class InstallResult:
    """The files ``init`` wrote."""

    settings_path: str
    mcp_path: str
    hook_command: str


def _shell_quote(value: str) -> str:
    """Quote ``value`` in double quotes for ``sh -c``."""
    escaped = "".join("\\" + char if char in '"$`\\' else char for char in value)
    return f'"{escaped}"'


def hook_command(python: str | None = None) -> str:
    """Return the shell command Claude Code runs for the capture hook."""
    interpreter = python or sys.executable
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), _HOOK_SCRIPT)
    return f"{_shell_quote(interpreter)} -I -S {_shell_quote(script)}"


def _read_json(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path!r}: {exc.strerror or exc}") from exc
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{path!r} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix or remove it, then run 'eventsync init' again"
        ) from exc
    if not isinstance(value, dict):
        raise ConfigurationError(f"{path!r} must hold a JSON object, found {type(value).__name__}")
    return value


def _write_json(path: str, value: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staging = f"{path}.eventsync-tmp"
    with open(staging, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    os.replace(staging, path)


def _is_eventsync_group(group: object) -> bool:
    if not isinstance(group, dict):
        return False
    hooks = group.get("hooks")
    return isinstance(hooks, list) and any(
        isinstance(hook, dict) and _HOOK_SCRIPT in str(hook.get("command", "")) and "mcp_server" in str(hook.get("command", ""))
        for hook in hooks
    )


def merge_settings(settings: dict[str, Any], command: str) -> dict[str, Any]:
    """Return ``settings`` with eventsync's PostToolUse hook group in place of any older one."""
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigurationError(f"'hooks' in the settings must be an object, found {type(hooks).__name__}")
    groups = hooks.setdefault("PostToolUse", [])
    if not isinstance(groups, list):
        raise ConfigurationError(f"'hooks.PostToolUse' must be a list, found {type(groups).__name__}")
    groups[:] = [group for group in groups if not _is_eventsync_group(group)]
    groups.append(
        {"matcher": HOOK_MATCHER, "hooks": [{"type": "command", "command": command, "timeout": HOOK_TIMEOUT_SECONDS}]}
    )
    return settings


def merge_mcp(config: dict[str, Any], python: str) -> dict[str, Any]:
    """Return ``.mcp.json`` content with the eventsync server entry set."""
    servers = config.setdefault("mcpServers", {})
    if not isinstance(servers, dict):
        raise ConfigurationError(f"'mcpServers' in .mcp.json must be an object, found {type(servers).__name__}")
    servers[SERVER_NAME] = {"type": "stdio", "command": python, "args": ["-m", "mcp_server", "serve"], "env": {}}
    return config


def init_project(path: str, *, python: str | None = None) -> InstallResult:
    """Install eventsync's hook and MCP server into the project at ``path``.

    Raises:
        ConfigurationError: ``path`` is not a folder, or an existing file is not valid JSON.
    """
    root = os.path.realpath(path)
    if not os.path.isdir(root):
        raise ConfigurationError(f"cannot install into {path!r}: not a folder")
    interpreter = python or sys.executable
    command = hook_command(interpreter)

    settings_path = os.path.join(root, ".claude", "settings.json")
    mcp_path = os.path.join(root, ".mcp.json")
    settings = merge_settings(_read_json(settings_path), command)
    mcp_config = merge_mcp(_read_json(mcp_path), interpreter)
    try:
        _write_json(settings_path, settings)
        _write_json(mcp_path, mcp_config)
    except OSError as exc:
        raise ConfigurationError(f"cannot write eventsync's settings into {root!r}: {exc.strerror or exc}") from exc
    return InstallResult(settings_path=settings_path, mcp_path=mcp_path, hook_command=command)
