"""The plugin's hook and server commands run as Claude Code runs them, under paths with spaces.

Claude Code runs a hook's command string with ``/bin/sh -c`` and exports
``CLAUDE_PLUGIN_ROOT``, ``CLAUDE_PLUGIN_DATA`` and ``CLAUDE_PROJECT_DIR``. These
tests do the same with a copy of the plugin in a folder named with spaces, for
each interpreter the command can end up on, and check the launcher's messages
when no Python 3.11+ exists.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import git
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter
from plugin_support import copy_plugin, hook_commands, load_json

MAIN_SOURCE = "# @touchpoint main-entry\nprint('hello')\n"
RUN_TIMEOUT = 60.0
NO_PYTHON = "no Python 3.11 or newer found on PATH (tried python3 (not found), python3.14 (not found), "


@dataclass
class Setup:
    plugin: Path
    data: Path
    project: Path
    python_bin: Path
    """A PATH folder holding only ``python3`` (this test's interpreter) and ``sh``."""
    no_python_bin: Path
    """A PATH folder holding only ``sh``: hook commands find no interpreter there."""

    def env(self, path: Path, **extra: str) -> dict[str, str]:
        return {
            "PATH": str(path),
            "HOME": str(self.data.parent / "home"),
            "XDG_STATE_HOME": str(self.data.parent / "state"),
            "CLAUDE_PLUGIN_ROOT": str(self.plugin),
            "CLAUDE_PLUGIN_DATA": str(self.data),
            "CLAUDE_PROJECT_DIR": str(self.project),
            **extra,
        }


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    plugin = copy_plugin(tmp_path / "plug ins" / "touchpoint plugin")
    project = tmp_path / "My Projects" / "shop app"
    (project / "src").mkdir(parents=True)
    git.Repo.init(project).close()
    (project / "src" / "main.py").write_text(MAIN_SOURCE, encoding="utf-8")
    python_bin = _bin_folder(tmp_path / "bin with python", python3=sys.executable)
    no_python_bin = _bin_folder(tmp_path / "bin without python")
    data = tmp_path / "plugin data"
    data.mkdir()
    return Setup(plugin, data, project.resolve(), python_bin, no_python_bin)


def _bin_folder(folder: Path, **links: str) -> Path:
    """Make a PATH folder with ``sh`` and the given name -> target symlinks."""
    folder.mkdir()
    (folder / "sh").symlink_to("/bin/sh")
    for name, target in links.items():
        (folder / name).symlink_to(target)
    return folder


def _sh(command: str, env: dict[str, str], cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["/bin/sh", "-c", command], input=stdin, env=env, cwd=cwd, capture_output=True, timeout=RUN_TIMEOUT,
        check=False,
    )


def _edit_payload(project: Path, tool_use_id: str) -> bytes:
    return json.dumps({
        "session_id": "s-04", "cwd": str(project), "hook_event_name": "PostToolUse", "tool_name": "Edit",
        "tool_input": {"file_path": str(project / "src" / "main.py"), "old_string": "a", "new_string": "b"},
        "tool_response": {}, "tool_use_id": tool_use_id,
    }).encode()


def _saved_events(project: Path) -> list[dict[str, object]]:
    runtime = Runtime(str(project), environ={})
    try:
        page = runtime.query_events(EventFilter(types=("file.saved",)), limit=100, cursor=None, descending=False)
        return [event.to_dict() for event in page.events]
    finally:
        runtime.close()


def _make_venv(folder: Path) -> None:
    """Create a real venv without pip (fast): the capture hook needs only its interpreter."""
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=RUN_TIMEOUT)


# -- capture ----------------------------------------------------------------------------------


@pytest.mark.parametrize("interpreter", ["fallback", "venv", "override"])
def test_capture_with_spaces(setup: Setup, interpreter: str) -> None:
    [command] = hook_commands(setup.plugin)["PostToolUse"]
    extra: dict[str, str] = {}
    # Only the fallback may find python3 on PATH; the other two must use the interpreter they name.
    path = setup.python_bin if interpreter == "fallback" else setup.no_python_bin
    if interpreter == "venv":
        _make_venv(setup.data / "venv")
    elif interpreter == "override":
        extra["EVENTSYNC_PLUGIN_PYTHON"] = sys.executable

    result = _sh(command, setup.env(path, **extra), setup.project, _edit_payload(setup.project, f"toolu_{interpreter}"))

    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert b"No such file or directory" not in result.stderr
    saved = _saved_events(setup.project)
    assert [event["payload"]["path"] for event in saved] == ["src/main.py"]
    assert saved[0]["metadata"]["tool_use_id"] == f"toolu_{interpreter}"


@pytest.mark.parametrize("event", ["SessionEnd", "Stop", "UserPromptSubmit", "FileChanged"])
def test_session_event_commands_exit_zero(setup: Setup, event: str) -> None:
    [command] = hook_commands(setup.plugin)[event]
    payload = json.dumps({"session_id": "s-04", "cwd": str(setup.project), "hook_event_name": event}).encode()

    result = _sh(command, setup.env(setup.python_bin), setup.project, payload)

    assert result.returncode == 0, result.stderr
    assert result.stdout == b"" or isinstance(json.loads(result.stdout), dict), result.stdout


def test_session_start_with_override(setup: Setup) -> None:
    [command] = hook_commands(setup.plugin)["SessionStart"]
    payload = json.dumps({"session_id": "s-04", "cwd": str(setup.project), "hook_event_name": "SessionStart",
                          "source": "startup"}).encode()
    env = setup.env(setup.no_python_bin, EVENTSYNC_PLUGIN_PYTHON=sys.executable)

    result = _sh(command, env, setup.project, payload)

    assert result.returncode == 0, result.stderr
    assert result.stdout == b"" or isinstance(json.loads(result.stdout), dict), result.stdout
    # The override replaces the venv, so session start installs nothing.
    assert os.listdir(setup.data) == []


# -- no usable Python -------------------------------------------------------------------------


def test_capture_without_python(setup: Setup) -> None:
    [command] = hook_commands(setup.plugin)["PostToolUse"]
    env = setup.env(setup.no_python_bin)

    result = _sh(command, env, setup.project, _edit_payload(setup.project, "toolu_none"))

    assert result.returncode == 0
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("eventsync: error: " + NO_PYTHON), lines[0]
    assert lines[0].endswith("install Python 3.11 or newer, then start a new Claude Code session")


def test_session_start_without_python(setup: Setup) -> None:
    [command] = hook_commands(setup.plugin)["SessionStart"]

    result = _sh(command, setup.env(setup.no_python_bin), setup.project, b"{}")

    assert result.returncode == 0
    message = json.loads(result.stdout)["systemMessage"]
    assert message.startswith("eventsync is not running: " + NO_PYTHON), message
    assert result.stderr.decode().count("\n") == 1


def test_serve_without_python(setup: Setup) -> None:
    server = load_json(".claude-plugin/plugin.json", setup.plugin)["mcpServers"]["eventsync"]
    args = [arg.replace("${CLAUDE_PLUGIN_ROOT}", str(setup.plugin)) for arg in server["args"]]

    result = subprocess.run(
        ["/bin/sh", *args], env=setup.env(setup.no_python_bin), cwd=setup.project, capture_output=True,
        timeout=RUN_TIMEOUT, check=False, stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().startswith("eventsync: error: " + NO_PYTHON)


def _old_pythons() -> list[str]:
    """Interpreters older than 3.11 on this machine (absolute paths), if any."""
    patterns = [
        "/usr/bin/python3.[0-9]",
        "/usr/local/bin/python3.[0-9]",
        os.path.expanduser("~/.pyenv/versions/3.[0-9].*/bin/python3"),
    ]
    return sorted(path for pattern in patterns for path in glob.glob(pattern) if os.access(path, os.X_OK))


def test_too_old_python_is_named(setup: Setup) -> None:
    old = _old_pythons()
    if not old:
        pytest.skip("no Python older than 3.11 on this machine to offer as python3")
    folder = _bin_folder(setup.data.parent / "bin with old python", python3=old[0])
    version = subprocess.run([old[0], "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True, timeout=RUN_TIMEOUT).stdout.strip()

    result = _sh('sh "${CLAUDE_PLUGIN_ROOT}/hooks/run.sh" capture', setup.env(folder), setup.project, b"{}")

    assert result.returncode == 0
    assert f"(tried python3 ({version}), python3.14 (not found)" in result.stderr.decode()


def test_override_not_executable(setup: Setup) -> None:
    missing = setup.data.parent / "no such python"

    result = _sh('sh "${CLAUDE_PLUGIN_ROOT}/hooks/run.sh" session-start',
                 setup.env(setup.python_bin, EVENTSYNC_PLUGIN_PYTHON=str(missing)), setup.project, b"{}")

    assert result.returncode == 0
    assert f"EVENTSYNC_PLUGIN_PYTHON is set to {missing}, which is not an executable file" in result.stderr.decode()
    assert "systemMessage" in json.loads(result.stdout)


def test_unknown_mode_rejected(setup: Setup) -> None:
    result = _sh('sh "${CLAUDE_PLUGIN_ROOT}/hooks/run.sh" nonsense', setup.env(setup.python_bin), setup.project)

    assert result.returncode == 2
    assert b"unknown mode 'nonsense'" in result.stderr


# -- server -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_server_with_spaces(setup: Setup) -> None:
    server = load_json(".claude-plugin/plugin.json", setup.plugin)["mcpServers"]["eventsync"]
    args = [arg.replace("${CLAUDE_PLUGIN_ROOT}", str(setup.plugin)) for arg in server["args"]]
    [command] = hook_commands(setup.plugin)["PostToolUse"]
    env = setup.env(setup.no_python_bin, EVENTSYNC_PLUGIN_PYTHON=sys.executable)
    captured = _sh(command, env, setup.project, _edit_payload(setup.project, "toolu_server"))
    assert captured.returncode == 0, captured.stderr
    parameters = StdioServerParameters(command="/bin/sh", args=args, env=env, cwd=str(setup.project))

    with anyio.fail_after(60):
        async with Client(parameters, mode="legacy") as client:
            result = await client.call_tool("list_touchpoints", {})

    assert not result.is_error, result.content
    rows = result.structured_content["touchpoints"]
    assert [(row["name"], row["path"], row["line"]) for row in rows] == [("main-entry", "src/main.py", 1)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
