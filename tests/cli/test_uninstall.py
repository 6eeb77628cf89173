"""``eventsync uninstall``: removes exactly what ``init`` added and nothing else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_server.errors import ConfigurationError
from mcp_server.install import HOOK_EVENTS, init_project, uninstall_project

USER_SETTINGS: dict[str, Any] = {
    "permissions": {"allow": ["Bash(ls)"], "deny": []},
    "env": {"FOO": "bar"},
    "hooks": {
        "PostToolUse": [{"matcher": "Write", "hooks": [{"type": "command", "command": "prettier --write"}]}],
        "Stop": [{"hooks": [{"type": "command", "command": "say done"}]}],
        "PreToolUse": [],
    },
    "enableAllProjectMcpServers": True,
}
USER_MCP: dict[str, Any] = {"mcpServers": {"other": {"type": "stdio", "command": "other-server", "args": ["--x"]}}}


def _write(path: Path, value: object) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(value, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_server", *args], capture_output=True, text=True, timeout=60, check=False,
        stdin=subprocess.DEVNULL,
    )


def test_round_trip_restores_settings(tmp_path: Path) -> None:
    settings_path = tmp_path / ".claude" / "settings.json"
    mcp_path = tmp_path / ".mcp.json"
    settings_text = _write(settings_path, USER_SETTINGS)
    mcp_text = _write(mcp_path, USER_MCP)

    init_project(str(tmp_path))
    init_project(str(tmp_path))
    result = uninstall_project(str(tmp_path))

    assert json.loads(settings_path.read_text(encoding="utf-8")) == USER_SETTINGS
    assert json.loads(mcp_path.read_text(encoding="utf-8")) == USER_MCP
    # Keys come back in their original order too, so the text matches for files written with indent=2.
    assert settings_path.read_text(encoding="utf-8") == settings_text
    assert mcp_path.read_text(encoding="utf-8") == mcp_text
    assert result.removed_hooks == len(HOOK_EVENTS)
    assert result.removed_server
    assert result.deleted_files == []


def test_round_trip_on_empty_project(tmp_path: Path) -> None:
    init_project(str(tmp_path))

    result = uninstall_project(str(tmp_path))

    assert sorted(os.listdir(tmp_path)) == []
    assert sorted(result.deleted_files) == [str(tmp_path / ".claude" / "settings.json"), str(tmp_path / ".mcp.json")]


def test_round_trip_keeps_other_claude_files(tmp_path: Path) -> None:
    local = tmp_path / ".claude" / "settings.local.json"
    _write(local, {"permissions": {"allow": ["Bash(make)"]}})
    init_project(str(tmp_path))

    uninstall_project(str(tmp_path))

    assert sorted(os.listdir(tmp_path / ".claude")) == ["settings.local.json"]
    assert json.loads(local.read_text(encoding="utf-8")) == {"permissions": {"allow": ["Bash(make)"]}}


def test_settings_with_only_other_keys(tmp_path: Path) -> None:
    settings_path = tmp_path / ".claude" / "settings.json"
    _write(settings_path, {"model": "opus"})
    _write(tmp_path / ".mcp.json", {})
    init_project(str(tmp_path))

    result = uninstall_project(str(tmp_path))

    assert json.loads(settings_path.read_text(encoding="utf-8")) == {"model": "opus"}
    # .mcp.json held nothing before init, so it is gone once eventsync's entry is removed.
    assert not (tmp_path / ".mcp.json").exists()
    assert result.deleted_files == [str(tmp_path / ".mcp.json")]


def test_keeps_foreign_handler_in_group(tmp_path: Path) -> None:
    init_project(str(tmp_path))
    settings_path = tmp_path / ".claude" / "settings.json"
    settings = json.loads(settings_path.read_text(encoding="utf-8"))
    ours = settings["hooks"]["PostToolUse"][0]
    foreign = {"type": "command", "command": "ruff format"}
    ours["hooks"].append(foreign)
    _write(settings_path, settings)

    uninstall_project(str(tmp_path))

    remaining = json.loads(settings_path.read_text(encoding="utf-8"))
    assert remaining == {"hooks": {"PostToolUse": [{"matcher": ours["matcher"], "hooks": [foreign]}]}}


def test_keeps_containers_already_empty(tmp_path: Path) -> None:
    settings_path = tmp_path / ".claude" / "settings.json"
    _write(settings_path, {"hooks": {"PreToolUse": [], "Notification": [{"hooks": []}]}})
    init_project(str(tmp_path))

    uninstall_project(str(tmp_path))

    assert json.loads(settings_path.read_text(encoding="utf-8")) == {
        "hooks": {"PreToolUse": [], "Notification": [{"hooks": []}]}
    }


def test_uninstall_without_eventsync_is_noop(tmp_path: Path) -> None:
    settings_path = tmp_path / ".claude" / "settings.json"
    mcp_path = tmp_path / ".mcp.json"
    settings_text = _write(settings_path, USER_SETTINGS)
    mcp_text = _write(mcp_path, USER_MCP)
    mtimes = (settings_path.stat().st_mtime_ns, mcp_path.stat().st_mtime_ns)

    completed = _cli("uninstall", str(tmp_path))

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith(f"eventsync is not installed in {tmp_path.resolve()}")
    assert "nothing changed" in completed.stdout
    assert settings_path.read_text(encoding="utf-8") == settings_text
    assert mcp_path.read_text(encoding="utf-8") == mcp_text
    assert (settings_path.stat().st_mtime_ns, mcp_path.stat().st_mtime_ns) == mtimes


def test_uninstall_on_bare_folder(tmp_path: Path) -> None:
    completed = _cli("uninstall", str(tmp_path))

    assert completed.returncode == 0, completed.stderr
    assert "nothing changed" in completed.stdout
    assert os.listdir(tmp_path) == []


def test_cli_reports_removals(tmp_path: Path) -> None:
    _write(tmp_path / ".claude" / "settings.json", USER_SETTINGS)
    assert _cli("init", str(tmp_path)).returncode == 0

    completed = _cli("uninstall", str(tmp_path))

    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    settings_path = tmp_path.resolve() / ".claude" / "settings.json"
    assert lines[0] == f"removed {len(HOOK_EVENTS)} eventsync hook handlers from {settings_path}"
    assert lines[1] == f"removed the MCP server 'eventsync' from {tmp_path.resolve() / '.mcp.json'}"
    assert lines[2] == f"deleted {tmp_path.resolve() / '.mcp.json'}, which held only eventsync's entries"
    assert len(lines) == 3  # no event log was ever written, so no kept log is reported


def test_cli_reports_kept_log(tmp_path: Path) -> None:
    assert _cli("init", str(tmp_path)).returncode == 0
    assert _cli("events", "--project", str(tmp_path)).returncode == 0  # opens, and so creates, the event log

    completed = _cli("uninstall", str(tmp_path))

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[-1] == (
        f"kept the event log in {tmp_path.resolve() / '.eventsync'}; delete that folder to discard it"
    )


def test_uninstall_rejects_invalid_json(tmp_path: Path) -> None:
    init_project(str(tmp_path))
    (tmp_path / ".mcp.json").write_text("{ not json", encoding="utf-8")
    settings_before = (tmp_path / ".claude" / "settings.json").read_text(encoding="utf-8")

    with pytest.raises(ConfigurationError, match="is not valid JSON"):
        uninstall_project(str(tmp_path))
    assert (tmp_path / ".claude" / "settings.json").read_text(encoding="utf-8") == settings_before
    assert (tmp_path / ".mcp.json").read_text(encoding="utf-8") == "{ not json"


def test_uninstall_rejects_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot uninstall from .*: not a folder"):
        uninstall_project(str(tmp_path / "missing"))
