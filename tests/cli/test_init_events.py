"""``eventsync init`` registers the capture hook for the same events as the plugin's hooks.json."""

from __future__ import annotations

import json
from pathlib import Path

from mcp_server.install import HOOK_EVENTS, HOOK_MATCHER, hook_command, init_project

REPO_ROOT = Path(__file__).resolve().parents[2]


def _settings(root: Path) -> dict:
    return json.loads((root / ".claude" / "settings.json").read_text(encoding="utf-8"))


def test_init_registers_every_event(tmp_path: Path) -> None:
    init_project(str(tmp_path))

    hooks = _settings(tmp_path)["hooks"]
    assert list(hooks) == list(HOOK_EVENTS)
    for event, matcher in HOOK_EVENTS.items():
        [group] = hooks[event]
        assert group.get("matcher") == matcher, event
        assert group["hooks"] == [{"type": "command", "command": hook_command(), "timeout": 10}], event
    assert hooks["PostToolUse"][0]["matcher"] == HOOK_MATCHER


def test_init_twice_adds_no_copies(tmp_path: Path) -> None:
    init_project(str(tmp_path))
    first = _settings(tmp_path)

    init_project(str(tmp_path))

    assert _settings(tmp_path) == first


def test_init_replaces_older_command(tmp_path: Path) -> None:
    init_project(str(tmp_path), python="/old/venv/bin/python")

    init_project(str(tmp_path))

    for event in HOOK_EVENTS:
        [group] = _settings(tmp_path)["hooks"][event]
        assert group["hooks"][0]["command"] == hook_command(), event


def test_events_match_plugin_hooks() -> None:
    plugin_hooks = json.loads((REPO_ROOT / "hooks" / "hooks.json").read_text(encoding="utf-8"))["hooks"]

    assert set(plugin_hooks) == set(HOOK_EVENTS)
    for event, matcher in HOOK_EVENTS.items():
        assert [group.get("matcher") for group in plugin_hooks[event]] == [matcher], event
