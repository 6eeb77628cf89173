"""``eventsync init``: merging settings, quoting, idempotency."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from mcp_server.errors import ConfigurationError
from mcp_server.install import HOOK_MATCHER, init_project


def _settings(root: Path) -> dict:
    return json.loads((root / ".claude" / "settings.json").read_text())


def test_init_writes_hook_and_server(tmp_path: Path) -> None:
    init_project(str(tmp_path))

    [group] = _settings(tmp_path)["hooks"]["PostToolUse"]
    [hook] = group["hooks"]
    assert group["matcher"] == HOOK_MATCHER
    assert hook["timeout"] <= 10
    assert shlex.split(hook["command"])[0] == sys.executable
    server = json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]["eventsync"]
    assert server["command"] == sys.executable
    assert server["args"] == ["-m", "mcp_server", "serve"]


def test_init_keeps_other_settings(tmp_path: Path) -> None:
    (tmp_path / ".claude").mkdir()
    other_hook = {"matcher": "Write", "hooks": [{"type": "command", "command": "prettier --write"}]}
    (tmp_path / ".claude" / "settings.json").write_text(json.dumps({
        "permissions": {"allow": ["Bash(ls)"]},
        "hooks": {"PostToolUse": [other_hook], "Stop": [{"hooks": [{"type": "command", "command": "say done"}]}]},
    }))
    (tmp_path / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}}))

    init_project(str(tmp_path))
    init_project(str(tmp_path))

    settings = _settings(tmp_path)
    assert settings["permissions"] == {"allow": ["Bash(ls)"]}
    assert settings["hooks"]["Stop"][0] == {"hooks": [{"type": "command", "command": "say done"}]}
    assert len(settings["hooks"]["Stop"]) == 2
    assert settings["hooks"]["PostToolUse"][0] == other_hook
    assert len(settings["hooks"]["PostToolUse"]) == 2
    assert set(json.loads((tmp_path / ".mcp.json").read_text())["mcpServers"]) == {"other", "eventsync"}


def test_init_quotes_paths_with_spaces(tmp_path: Path) -> None:
    root = tmp_path / "My Projects" / "shop app"
    root.mkdir(parents=True)

    init_project(str(root), python="/opt/My Python/bin/python3")

    command = _settings(root)["hooks"]["PostToolUse"][0]["hooks"][0]["command"]
    assert shlex.split(command)[0] == "/opt/My Python/bin/python3"
    assert command.startswith('"/opt/My Python/bin/python3" -I -S "')


def test_init_rejects_invalid_json(tmp_path: Path) -> None:
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude" / "settings.json").write_text("{ not json")

    with pytest.raises(ConfigurationError, match="is not valid JSON \\(line 1"):
        init_project(str(tmp_path))
    assert (tmp_path / ".claude" / "settings.json").read_text() == "{ not json"


def test_init_rejects_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not a folder"):
        init_project(str(tmp_path / "missing"))
