"""Installing eventsync into a project and removing it: Claude Code hook settings and the MCP server entry.

``eventsync init PATH`` merges two files and leaves everything else in them
untouched:

* ``PATH/.claude/settings.json`` gets one hook group per event in
  :data:`HOOK_EVENTS` that runs the capture hook: ``PostToolUse`` for the file
  tools and ``Bash``, plus the session events the hook records. The interpreter
  is named by absolute path (a version-manager shim would add about 150 ms per
  tool call) and every path is double-quoted, so folders with spaces work.
* ``PATH/.mcp.json`` gets the ``eventsync`` stdio server.

Running ``init`` again replaces eventsync's own entries instead of adding
copies. ``eventsync uninstall PATH`` removes them again: every hook handler
that runs ``mcp_server/hook_entry.py`` and the ``eventsync`` server entry. A
hook group, event list, ``hooks`` or ``mcpServers`` object, or file that
contained nothing but eventsync's entries is removed with them, because
``init`` created it. Everything else stays as it was.

The Claude Code plugin (``.claude-plugin/`` and ``hooks/hooks.json``) is the
other way to install eventsync; this module does not touch it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from mcp_server.errors import ConfigurationError

__all__ = [
    "HOOK_EVENTS",
    "HOOK_MATCHER",
    "HOOK_TIMEOUT_SECONDS",
    "SERVER_NAME",
    "InstallResult",
    "UninstallResult",
    "hook_command",
    "init_project",
    "uninstall_project",
]

HOOK_MATCHER = "Write|Edit|MultiEdit|NotebookEdit|Bash|Read"
"""Tools whose PostToolUse the hook captures, as an exact-name list (so ``Edit`` does not match ``NotebookEdit``).

``Read`` is included, recorded as ``file.read``, so a session hears when another one changes a file it only read.
"""

HOOK_EVENTS: dict[str, str | None] = {
    "PostToolUse": HOOK_MATCHER,
    "SessionStart": None,
    "SessionEnd": None,
    "Stop": None,
    "UserPromptSubmit": None,
    "FileChanged": None,
}
"""Hook events ``init`` registers the capture hook for, with each group's matcher (None: no matcher).

The same list is in the plugin's ``hooks/hooks.json``. ``FileChanged`` has no
matcher, so it fires only for paths a hook returned as ``watchPaths``.
"""

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


@dataclass(frozen=True, slots=True)
class UninstallResult:
    """The entries ``uninstall`` removed and the files it deleted."""

    settings_path: str
    mcp_path: str
    removed_hooks: int
    """Hook handlers that ran eventsync's capture hook, across all events."""
    removed_server: bool
    deleted_files: list[str] = field(default_factory=list)
    """Files left empty by the removal and therefore deleted."""

    @property
    def changed(self) -> bool:
        return bool(self.removed_hooks or self.removed_server)


def _shell_quote(value: str) -> str:
    """Quote ``value`` in double quotes for ``sh -c``."""
    escaped = "".join("\\" + char if char in '"$`\\' else char for char in value)
    return f'"{escaped}"'


def hook_command(python: str | None = None) -> str:
    """Return the shell command Claude Code runs for the capture hook."""
    interpreter = python or sys.executable
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), _HOOK_SCRIPT)
    return f"{_shell_quote(interpreter)} -I -S {_shell_quote(script)}"


# -- files ------------------------------------------------------------------------------


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
            "fix or remove it, then run eventsync again"
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


def _project_root(path: str, action: str) -> str:
    root = os.path.realpath(path)
    if not os.path.isdir(root):
        raise ConfigurationError(f"cannot {action} {path!r}: not a folder")
    return root


# -- settings.json ----------------------------------------------------------------------


def _is_eventsync_hook(hook: object) -> bool:
    if not isinstance(hook, dict):
        return False
    command = str(hook.get("command", ""))
    return _HOOK_SCRIPT in command and "mcp_server" in command


def _strip_eventsync_hooks(groups: list[Any]) -> tuple[list[Any], int]:
    """Return ``groups`` without eventsync's handlers, and how many were removed.

    A group that contained only eventsync's handlers is dropped. A group that
    also contains someone else's handlers keeps those.
    """
    kept: list[Any] = []
    removed = 0
    for group in groups:
        handlers = group.get("hooks") if isinstance(group, dict) else None
        if not isinstance(handlers, list):
            kept.append(group)
            continue
        others = [hook for hook in handlers if not _is_eventsync_hook(hook)]
        count = len(handlers) - len(others)
        removed += count
        if count == 0:
            kept.append(group)
        elif others:
            kept.append({**group, "hooks": others})
    return kept, removed


def _hooks_object(settings: dict[str, Any]) -> dict[str, Any]:
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigurationError(f"'hooks' in the settings must be an object, found {type(hooks).__name__}")
    return hooks


def merge_settings(settings: dict[str, Any], command: str) -> dict[str, Any]:
    """Return ``settings`` with eventsync's hook group for each of :data:`HOOK_EVENTS`, replacing older ones."""
    hooks = _hooks_object(settings)
    for event, matcher in HOOK_EVENTS.items():
        groups = hooks.setdefault(event, [])
        if not isinstance(groups, list):
            raise ConfigurationError(f"'hooks.{event}' must be a list, found {type(groups).__name__}")
        groups[:], _ = _strip_eventsync_hooks(groups)
        group: dict[str, Any] = {} if matcher is None else {"matcher": matcher}
        group["hooks"] = [{"type": "command", "command": command, "timeout": HOOK_TIMEOUT_SECONDS}]
        groups.append(group)
    return settings


def remove_from_settings(settings: dict[str, Any]) -> int:
    """Remove eventsync's hook handlers from ``settings`` in place; return how many were removed.

    An event list or ``hooks`` object that this removal leaves empty is deleted;
    one that was empty before is left alone.
    """
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return 0
    removed = 0
    for event in list(hooks):
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        kept, count = _strip_eventsync_hooks(groups)
        removed += count
        if count and not kept:
            del hooks[event]
        else:
            hooks[event] = kept
    if removed and not hooks:
        del settings["hooks"]
    return removed


# -- .mcp.json --------------------------------------------------------------------------


def merge_mcp(config: dict[str, Any], python: str) -> dict[str, Any]:
    """Return ``.mcp.json`` content with the eventsync server entry set."""
    servers = config.setdefault("mcpServers", {})
    if not isinstance(servers, dict):
        raise ConfigurationError(f"'mcpServers' in .mcp.json must be an object, found {type(servers).__name__}")
    servers[SERVER_NAME] = {"type": "stdio", "command": python, "args": ["-m", "mcp_server", "serve"], "env": {}}
    return config


def remove_from_mcp(config: dict[str, Any]) -> bool:
    """Remove the eventsync server entry from ``config`` in place; return True if there was one.

    NOTE: ``init`` overwrites an ``eventsync`` entry that was there before it
    ran, so such an entry is removed here rather than restored.
    """
    servers = config.get("mcpServers")
    if not isinstance(servers, dict) or SERVER_NAME not in servers:
        return False
    del servers[SERVER_NAME]
    if not servers:
        del config["mcpServers"]
    return True


# -- commands ---------------------------------------------------------------------------


def init_project(path: str, *, python: str | None = None) -> InstallResult:
    """Install eventsync's hooks and MCP server into the project at ``path``.

    Raises:
        ConfigurationError: ``path`` is not a folder, or an existing file is not valid JSON.
    """
    root = _project_root(path, "install into")
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


def _save_or_delete(path: str, value: dict[str, Any], deleted: list[str]) -> None:
    """Write ``value`` to ``path``, or delete the file when the removal left it empty."""
    if value:
        _write_json(path, value)
        return
    os.remove(path)
    deleted.append(path)


def uninstall_project(path: str) -> UninstallResult:
    """Remove what ``init`` added to the project at ``path``; a project without eventsync is left untouched.

    NOTE: an event list or object that was already empty before ``init`` filled
    it (for example ``"PostToolUse": []``) is removed too, because nothing
    records that it existed.

    Raises:
        ConfigurationError: ``path`` is not a folder, a file is not valid JSON, or a file cannot be written.
    """
    root = _project_root(path, "uninstall from")
    settings_path = os.path.join(root, ".claude", "settings.json")
    mcp_path = os.path.join(root, ".mcp.json")
    settings = _read_json(settings_path)
    mcp_config = _read_json(mcp_path)

    removed_hooks = remove_from_settings(settings)
    removed_server = remove_from_mcp(mcp_config)
    deleted: list[str] = []
    try:
        if removed_hooks:
            _save_or_delete(settings_path, settings, deleted)
            if settings_path in deleted and not os.listdir(os.path.dirname(settings_path)):
                os.rmdir(os.path.dirname(settings_path))
        if removed_server:
            _save_or_delete(mcp_path, mcp_config, deleted)
    except OSError as exc:
        raise ConfigurationError(f"cannot remove eventsync's settings from {root!r}: {exc.strerror or exc}") from exc
    return UninstallResult(
        settings_path=settings_path, mcp_path=mcp_path, removed_hooks=removed_hooks, removed_server=removed_server,
        deleted_files=deleted,
    )
