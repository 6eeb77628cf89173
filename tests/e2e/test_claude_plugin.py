"""End-to-end tests of eventsync as a Claude Code plugin, driving the real ``claude`` CLI.

* ``claude plugin validate --strict`` on the repository (the marketplace) and on its plugin manifest.
* ``claude plugin marketplace add`` on a copy of the repository, then ``claude plugin install``.
* ``claude -p --plugin-dir`` against the scripted fake model: the plugin's hooks capture a Write,
  and its MCP server returns the touchpoint from ``list_touchpoints``. The plugin copy and the project both sit under
  folders whose names contain spaces.

The session test points the plugin at this test run's interpreter with ``EVENTSYNC_PLUGIN_PYTHON``,
so it needs no pip install; tests/plugin/test_plugin_bootstrap.py covers the venv bootstrap.
The CLI and the harness are found as in test_claude_cli.py, whose helpers this file reuses.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import git
import pytest

from plugin.plugin_support import copy_plugin
from test_claude_cli import (
    CLAUDE_TIMEOUT,
    EVENTS_TIMEOUT,
    REPO_ROOT,
    _claude_env,
    _eventsync,
    _fake_model,
    _find_claude,
    _find_harness,
    _netns_tools,
    _print_on_failure,
    _read_jsonl,
    _run_claude,
    _sha256,
    _tail,
    _tool_result_value,
)

PLUGIN_TOOL_PREFIX = "mcp__plugin_eventsync_eventsync__"
"""Claude Code names a plugin's MCP tools mcp__plugin_<plugin>_<server>__<tool>."""

PLUGIN_TOOL = PLUGIN_TOOL_PREFIX + "list_touchpoints"
PLUGIN_TOOLS = {
    PLUGIN_TOOL_PREFIX + name
    for name in ("query_events", "list_touchpoints", "search_touchpoints", "get_context", "emit_event")
}

CLI_TIMEOUT = 60.0

HOOK_EVENTS_IN_SESSION = {"SessionStart", "UserPromptSubmit", "PostToolUse", "Stop"}
"""Hook events of the plugin that fire during ``claude -p`` and show up in its stream-json output."""

APP_PATH = "src/shop.py"
APP_SOURCE = "# @touchpoint cart-total Sums the cart\ndef cart_total(prices):\n    return sum(prices)\n"

STRICT_TOLERATED = {
    # NOTE: CLAUDE.md at the repository root guides agents working on eventsync itself; Claude Code
    # 2.1.197 ignores it inside a plugin and --strict reports it. Claude Code also reads
    # .claude/CLAUDE.md, so moving it there lets the strict check pass with no exception.
    "root: CLAUDE.md at the plugin root is not loaded as project context. "
    "To ship context with your plugin, use a skill (skills/<name>/SKILL.md) instead.",
}


def _claude_cli(claude: Path, home: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a ``claude`` sub-command offline with a throwaway HOME."""
    env = _claude_env(9, home)  # port 9 (discard): these sub-commands make no model request
    return subprocess.run(
        [str(claude), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL, check=False,
    )


def _findings(output: str) -> list[str]:
    """Return the validator's findings, the lines it marks with ``❯``."""
    return [line.strip().removeprefix("❯").strip() for line in output.splitlines() if line.strip().startswith("❯")]


# -- manifests ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [".", ".claude-plugin/plugin.json"], ids=["marketplace", "plugin"])
def test_validate_strict(tmp_path: Path, target: str) -> None:
    claude = _find_claude()
    home = tmp_path / "home"
    home.mkdir()

    result = _claude_cli(claude, home, "plugin", "validate", "--strict", target, cwd=REPO_ROOT)

    output = result.stdout + result.stderr
    findings = _findings(output)
    untolerated = [finding for finding in findings if finding not in STRICT_TOLERATED]
    assert not untolerated, f"claude plugin validate --strict {target} reported:\n{output}"
    if not findings:
        assert result.returncode == 0, output
        assert "Validation passed" in output, output


@pytest.mark.parametrize("target", [".", ".claude-plugin/plugin.json"], ids=["marketplace", "plugin"])
def test_validate_strict_plugin_files(tmp_path: Path, target: str) -> None:
    """The plugin's own files, without the repository's CLAUDE.md, pass with no finding at all."""
    claude = _find_claude()
    home = tmp_path / "home"
    home.mkdir()
    clone = copy_plugin(tmp_path / "clone")

    result = _claude_cli(claude, home, "plugin", "validate", "--strict", target, cwd=clone)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert _findings(output) == [], output
    assert "Validation passed" in output, output


def test_marketplace_install(tmp_path: Path) -> None:
    claude = _find_claude()
    home = tmp_path / "home"
    home.mkdir()
    clone = copy_plugin(tmp_path / "my clones" / "eventsync")

    added = _claude_cli(claude, home, "plugin", "marketplace", "add", str(clone), cwd=tmp_path)
    assert added.returncode == 0, added.stdout + added.stderr
    installed = _claude_cli(claude, home, "plugin", "install", "eventsync@eventsync", cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    listed = _claude_cli(claude, home, "plugin", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr

    [plugin] = [entry for entry in json.loads(listed.stdout) if entry["id"] == "eventsync@eventsync"]
    manifest = json.loads((REPO_ROOT / ".claude-plugin" / "plugin.json").read_text(encoding="utf-8"))
    assert plugin["version"] == manifest["version"]
    assert plugin["enabled"] is True
    install_path = Path(plugin["installPath"])
    assert (install_path / "hooks" / "hooks.json").is_file()
    assert (install_path / "hooks" / "run.sh").is_file()
    assert (install_path / "mcp_server" / "hook_entry.py").is_file()
    assert plugin["mcpServers"]["eventsync"]["args"] == ["${CLAUDE_PLUGIN_ROOT}/hooks/run.sh", "serve"]


# -- a session ------------------------------------------------------------------------------


def _model_script(project: Path) -> dict[str, object]:
    return {
        "turns": [
            {"tool_use": {"name": "Write", "input": {"file_path": str(project / APP_PATH), "content": APP_SOURCE}}},
            {"tool_use": {"name": PLUGIN_TOOL, "input": {}}},
            {"text": "done"},
        ],
        "side_text": "ok",
    }


def test_plugin_session_captures_and_serves(tmp_path: Path) -> None:
    harness = _find_harness()
    claude = _find_claude()

    plugin = copy_plugin(tmp_path / "plug ins" / "eventsync plugin")
    project = tmp_path / "My Projects" / "shop app"
    project.mkdir(parents=True)
    project = project.resolve()
    git.Repo.init(project).close()
    home = tmp_path / "home"
    home.mkdir()
    workdir = tmp_path / "work"
    workdir.mkdir()
    script = workdir / "script.json"
    script.write_text(json.dumps(_model_script(project), indent=2), encoding="utf-8")

    netns = _netns_tools()
    debug_log = workdir / "claude-debug.log"
    hook_log = project / ".eventsync" / "hook.log"
    with _fake_model(harness, script, workdir, netns) as fake:
        command = [
            # stream-json with hook events reports each hook's exit code and output.
            str(claude), "-p", "do it", "--output-format", "stream-json", "--verbose", "--include-hook-events",
            "--plugin-dir", str(plugin),
            "--allowedTools", f"Write,{PLUGIN_TOOL}",
            "--debug-file", str(debug_log),
        ]
        if netns is not None:
            command = [netns[1], f"--net=/proc/{fake.process.pid}/ns/net", "--", *command]
        env = {**_claude_env(fake.port, home), "EVENTSYNC_PLUGIN_PYTHON": sys.executable}
        run = _run_claude(command, project, env)

    requests = _read_jsonl(fake.request_log)
    main_requests = [record for record in requests if record.get("kind") == "main"]

    def describe() -> str:
        return "\n\n".join([
            f"claude command: {shlex.join(run.command)}",
            f"claude exit status: {'timed out' if run.timed_out else run.returncode} after {run.seconds:.1f} s",
            "claude stdout:\n" + run.stdout,
            "claude stderr:\n" + run.stderr,
            f"hook log {hook_log}:\n" + _tail(hook_log),
            "fake model stderr:\n" + _tail(fake.stderr_path),
            f"claude debug log {debug_log}:\n" + _tail(debug_log),
        ])

    with _print_on_failure(describe):
        assert not run.timed_out, f"claude did not finish within {CLAUDE_TIMEOUT:.0f} s"
        assert run.returncode == 0, f"claude exited with status {run.returncode}"
        messages = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
        [result] = [message for message in messages if message.get("type") == "result"]
        assert result.get("is_error") is False, f"claude reported an error: {result!r}"
        assert result.get("result") == "done"
        assert not result.get("permission_denials"), f"tools were denied: {result.get('permission_denials')!r}"
        session_id = result["session_id"]

        [init] = [message for message in messages if message.get("subtype") == "init"]
        assert init["mcp_servers"] == [{"name": "plugin:eventsync:eventsync", "status": "connected"}]
        assert [(entry["name"], entry["source"]) for entry in init["plugins"]] == [("eventsync", "eventsync@inline")]

        # Every hook of the plugin that fired exited 0 and printed nothing or the JSON Claude Code reads.
        responses = [message for message in messages if message.get("subtype") == "hook_response"]
        assert {response["hook_event"] for response in responses} >= HOOK_EVENTS_IN_SESSION
        for response in responses:
            assert response["exit_code"] == 0, f"{response['hook_name']} hook failed: {response!r}"
            assert response["outcome"] == "success", response
            stdout = response["stdout"]
            assert stdout == "" or isinstance(json.loads(stdout), dict), f"{response['hook_name']} printed {stdout!r}"

        offered = {tool["name"] for tool in main_requests[-1]["body"].get("tools", [])}
        assert PLUGIN_TOOLS <= offered, f"the plugin's MCP tools were not offered: {sorted(offered)}"
        foreign = {name for name in offered if name.startswith("mcp__") and not name.startswith(PLUGIN_TOOL_PREFIX)}
        assert not foreign, f"MCP tools from another server were offered: {sorted(foreign)}"

        listed = _eventsync(
            "events", "--json", "--type", "file.saved", "--project", str(project), cwd=project, timeout=EVENTS_TIMEOUT,
        )
        assert listed.returncode == 0, f"eventsync events failed ({listed.returncode}):\n{listed.stderr}"
        [saved] = json.loads(listed.stdout)
        assert saved["payload"]["path"] == APP_PATH
        assert saved["payload"]["tool"] == "Write"
        assert saved["payload"]["content_hash"] == _sha256(APP_SOURCE)
        assert saved["metadata"]["session_id"] == session_id

        [tool_use_id] = [
            block["id"]
            for record in main_requests
            for block in (record.get("answer") or {}).get("content", [])
            if block.get("type") == "tool_use" and block.get("name") == PLUGIN_TOOL
        ]
        [tool_result] = [
            block
            for message in main_requests[-1]["body"].get("messages", [])
            if isinstance(message.get("content"), list)
            for block in message["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result"
            and block.get("tool_use_id") == tool_use_id
        ]
        assert not tool_result.get("is_error"), f"{PLUGIN_TOOL} failed: {tool_result.get('content')!r}"
        listing = _tool_result_value(tool_result)
        assert [(row["name"], row["path"], row["line"]) for row in listing["touchpoints"]] == [
            ("cart-total", APP_PATH, 1)
        ]

        # EVENTSYNC_PLUGIN_PYTHON replaces the venv, so the plugin data folder contains none.
        data_dirs = list((home / ".claude" / "plugins" / "data").glob("*"))
        assert data_dirs, "Claude Code made no plugin data folder"
        assert not any((folder / "venv").exists() for folder in data_dirs)
        assert "ERROR" not in (hook_log.read_text(encoding="utf-8") if hook_log.exists() else "")

    print(f"claude -p with the plugin ran in {run.seconds:.1f} s")
