"""The plugin's manifests: metadata in step with the package, hook registrations, and shell-safe commands."""

from __future__ import annotations

import re
import tomllib

import pytest

import mcp_server
from mcp_server.install import HOOK_EVENTS, HOOK_MATCHER
from plugin_support import REPO_ROOT, hook_commands, load_json

PLUGIN_VARIABLES = ("CLAUDE_PLUGIN_ROOT", "CLAUDE_PLUGIN_DATA", "CLAUDE_PROJECT_DIR")


def _unquoted_expansions(command: str) -> list[str]:
    """Return the ``$`` expansions in a ``sh -c`` string that are not inside double quotes.

    An expansion outside double quotes is split into words, so a path with a
    space breaks the command. Single-quoted text is not expanded at all.
    """
    unquoted = []
    in_double = in_single = False
    index = 0
    while index < len(command):
        char = command[index]
        if char == "\\" and not in_single:
            index += 2
            continue
        if char == "'" and not in_double:
            in_single = not in_single
        elif char == '"' and not in_single:
            in_double = not in_double
        elif char == "$" and not in_single and not in_double:
            unquoted.append(re.match(r"\$\{?\w*", command[index:]).group())
        index += 1
    assert not in_double, f"unbalanced double quotes in {command!r}"
    assert not in_single, f"unbalanced single quotes in {command!r}"
    return unquoted


def test_versions_agree() -> None:
    manifest = load_json(".claude-plugin/plugin.json")
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))

    assert manifest["name"] == "eventsync"
    assert manifest["version"] == pyproject["project"]["version"]
    assert manifest["version"] == mcp_server.__version__
    assert manifest["license"] == pyproject["project"]["license"]["text"]
    for key in ("description", "author", "keywords", "$schema"):
        assert manifest[key], key


def test_marketplace_lists_repository_root() -> None:
    marketplace = load_json(".claude-plugin/marketplace.json")

    [entry] = marketplace["plugins"]
    assert entry["name"] == "eventsync"
    assert entry["source"] == "./"
    assert marketplace["owner"]["name"]
    # A version here would have to be kept equal to plugin.json's; the manifest's version rules.
    assert "version" not in entry


def test_server_replaces_repository_entry() -> None:
    """Claude Code merges plugin.json's servers over the plugin root's .mcp.json by key.

    The repository's .mcp.json starts the server from the project's own .venv,
    which a project using the plugin does not have, so the manifest must
    declare a server under the same key.
    """
    servers = load_json(".claude-plugin/plugin.json")["mcpServers"]
    repository_servers = load_json(".mcp.json")["mcpServers"]

    assert set(repository_servers) <= set(servers)
    server = servers["eventsync"]
    assert server["command"] == "sh"
    assert server["args"] == ["${CLAUDE_PLUGIN_ROOT}/hooks/run.sh", "serve"]
    assert (REPO_ROOT / "hooks" / "run.sh").is_file()


def test_hooks_cover_init_events() -> None:
    hooks = load_json("hooks/hooks.json")["hooks"]

    assert set(hooks) == set(HOOK_EVENTS)
    assert [group.get("matcher") for group in hooks["PostToolUse"]] == [HOOK_MATCHER]
    for event, groups in hooks.items():
        for group in groups:
            for handler in group["hooks"]:
                assert handler["type"] == "command", event
                assert 0 < handler["timeout"] <= 10, event


def test_capture_runs_venv_python_isolated() -> None:
    commands = hook_commands()

    [capture] = commands["PostToolUse"]
    assert 'exec "$python" -I -S "${CLAUDE_PLUGIN_ROOT}/mcp_server/hook_entry.py"' in capture
    assert '${CLAUDE_PLUGIN_DATA}/venv/bin/python' in capture
    for event in ("SessionEnd", "Stop", "UserPromptSubmit", "FileChanged"):
        assert commands[event] == [capture], event
    assert commands["SessionStart"] == ['sh "${CLAUDE_PLUGIN_ROOT}/hooks/run.sh" session-start']


@pytest.mark.parametrize("event", sorted(HOOK_EVENTS))
def test_commands_quote_expansions(event: str) -> None:
    for command in hook_commands()[event]:
        assert _unquoted_expansions(command) == [], command
        assert "\\" not in command, f"backslash in {command!r}"
        assert any(f"${{{name}}}" in command for name in PLUGIN_VARIABLES), command


def test_server_args_are_whole_paths() -> None:
    server = load_json(".claude-plugin/plugin.json")["mcpServers"]["eventsync"]

    for argument in [server["command"], *server["args"]]:
        assert "\\" not in argument
        # Each plugin variable starts its own argv element, so no shell ever splits it.
        for name in PLUGIN_VARIABLES:
            assert f"${{{name}}}" not in argument or argument.startswith(f"${{{name}}}"), argument


def test_quote_checker_flags_unquoted() -> None:
    assert _unquoted_expansions('sh ${CLAUDE_PLUGIN_ROOT}/hooks/run.sh') == ["${CLAUDE_PLUGIN_ROOT"]
    assert _unquoted_expansions('x="${A:-${B}/c}"; "$x" \'$y\'') == []
    assert _unquoted_expansions('exec $python -I') == ["$python"]
