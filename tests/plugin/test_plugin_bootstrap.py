"""The plugin's venv bootstrap, run for real in a temporary CLAUDE_PLUGIN_DATA.

pip runs with no package index (``PIP_NO_INDEX=1``, no pip config files), so
nothing here downloads. For the install path the venv is created first and
given a ``.pth`` line pointing at this test run's site-packages. pip then finds
every dependency already satisfied, as it would after a first install, and the
bootstrap still runs pip, links the plugin and writes its stamp. The cold path
(no venv at all) creates the venv and shows how a failed pip run is reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import git
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcp_server.errors import EventsyncError
from mcp_server.plugin import BOOTSTRAP_LOG_NAME, BootstrapError, PluginLayout, expected_stamp
from plugin_support import copy_plugin, hook_commands, load_json

RUN_TIMEOUT = 120.0
BACKGROUND_TIMEOUT = 60.0
PIP_RUN = "-m pip install"
"""Text of the line bootstrap.log gets for every pip run."""


@dataclass
class Plugin:
    layout: PluginLayout
    env: dict[str, str]

    @property
    def root(self) -> Path:
        return Path(self.layout.root)

    @property
    def data(self) -> Path:
        return Path(self.layout.data)

    def run(self, mode: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["/bin/sh", str(self.root / "hooks" / "run.sh"), mode], input=stdin, env=self.env, cwd=self.root,
            capture_output=True, timeout=RUN_TIMEOUT, check=False,
        )

    def pip_runs(self) -> int:
        log = self.data / BOOTSTRAP_LOG_NAME
        return log.read_text(encoding="utf-8").count(PIP_RUN) if log.exists() else 0

    def venv_python(self, *code: str) -> str:
        completed = subprocess.run(
            [self.layout.python, "-I", "-c", "\n".join(code)], capture_output=True, text=True, timeout=RUN_TIMEOUT,
            check=True,
        )
        return completed.stdout.strip()


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    root = copy_plugin(tmp_path / "plug ins" / "eventsync")
    data = tmp_path / "plugin data"
    data.mkdir()
    python_bin = tmp_path / "bin"
    python_bin.mkdir()
    (python_bin / "python3").symlink_to(sys.executable)
    (python_bin / "sh").symlink_to("/bin/sh")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    env.update({
        "PATH": str(python_bin), "CLAUDE_PLUGIN_ROOT": str(root), "CLAUDE_PLUGIN_DATA": str(data),
        "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    })
    env.pop("EVENTSYNC_PLUGIN_PYTHON", None)
    return Plugin(PluginLayout(root=str(root.resolve()), data=str(data)), env)


def _venv_with_dependencies(layout: PluginLayout) -> None:
    """Create the plugin's venv and let it import this test run's installed packages, pip included.

    ``--without-pip`` saves the few seconds ensurepip takes; ``python -m pip`` then
    runs the pip of this test run's environment, which installs into the venv.
    """
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", layout.venv], check=True, timeout=RUN_TIMEOUT,
                   capture_output=True)
    site_packages = subprocess.run(
        [layout.python, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, timeout=RUN_TIMEOUT,
    ).stdout.strip()
    Path(site_packages, "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")


def _wait_for(condition: object, timeout: float, describe: str) -> None:
    """Poll ``condition()`` until it is true, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {describe}")
        time.sleep(0.1)


def test_bootstrap_installs_then_reuses(plugin: Plugin) -> None:
    _venv_with_dependencies(plugin.layout)

    started = time.monotonic()
    first = plugin.run("bootstrap")
    install_seconds = time.monotonic() - started
    second = plugin.run("bootstrap")

    assert first.returncode == 0, first.stderr
    assert first.stdout == b""
    assert first.stderr.decode().strip() == f"eventsync: installed into {plugin.layout.venv}"
    assert second.returncode == 0, second.stderr
    assert second.stderr.decode().strip() == f"eventsync: already current: {plugin.layout.venv}"
    assert plugin.pip_runs() == 1
    assert json.loads(Path(plugin.layout.stamp).read_text(encoding="utf-8")) == expected_stamp(plugin.layout.root)
    # The tree-sitter grammars of the symbols extra are installed in the same pip run.
    [pip_line] = [line for line in _log_lines(plugin) if PIP_RUN in line]
    assert "tree-sitter-language-pack" in pip_line
    # The venv imports the plugin's own copy of the package, next to its dependencies.
    package = plugin.venv_python("import mcp, mcp_server", "print(mcp_server.__file__)")
    assert package == str(plugin.root / "mcp_server" / "__init__.py")
    print(f"bootstrap with dependencies already satisfied took {install_seconds:.1f} s")


def test_bootstrap_goes_on_without_extras(plugin: Plugin) -> None:
    _venv_with_dependencies(plugin.layout)
    pyproject = plugin.root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    # A grammar package pip cannot find, as on a platform without a fitting wheel.
    pyproject.write_text(text.replace('symbols = ["', 'symbols = ["eventsync-missing-grammars", "'), encoding="utf-8")

    result = plugin.run("bootstrap")

    assert result.returncode == 0, result.stderr
    assert plugin.pip_runs() == 2
    assert any("installing without eventsync-missing-grammars" in line for line in _log_lines(plugin))
    assert json.loads(Path(plugin.layout.stamp).read_text(encoding="utf-8")) == expected_stamp(plugin.layout.root)


def _log_lines(plugin: Plugin) -> list[str]:
    return (plugin.data / BOOTSTRAP_LOG_NAME).read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("change", ["pyproject", "version", "root"])
def test_bootstrap_reinstalls_on_change(plugin: Plugin, change: str, tmp_path: Path) -> None:
    _venv_with_dependencies(plugin.layout)
    assert plugin.run("bootstrap").returncode == 0
    if change == "pyproject":
        with open(plugin.root / "pyproject.toml", "a", encoding="utf-8") as handle:
            handle.write("\n# a change\n")
    elif change == "version":
        manifest = load_json(".claude-plugin/plugin.json", plugin.root)
        manifest["version"] = "0.1.1"
        (plugin.root / ".claude-plugin" / "plugin.json").write_text(json.dumps(manifest), encoding="utf-8")
    else:
        # A plugin update moves the plugin to a new folder under Claude Code's cache.
        moved = tmp_path / "updated plugin"
        plugin.root.rename(moved)
        plugin.layout = PluginLayout(root=str(moved.resolve()), data=plugin.layout.data)

    result = plugin.run("bootstrap")

    assert result.returncode == 0, result.stderr
    assert plugin.pip_runs() == 2
    assert json.loads(Path(plugin.layout.stamp).read_text(encoding="utf-8")) == expected_stamp(plugin.layout.root)
    package = plugin.venv_python("import mcp_server", "print(mcp_server.__file__)")
    assert package == str(plugin.root / "mcp_server" / "__init__.py")


def test_cold_bootstrap_reports_pip_failure(plugin: Plugin) -> None:
    started = time.monotonic()
    result = plugin.run("bootstrap")
    seconds = time.monotonic() - started

    log = plugin.data / BOOTSTRAP_LOG_NAME
    stderr = result.stderr.decode().strip()
    assert result.returncode == 1
    assert result.stdout == b""
    assert stderr.startswith("eventsync: error: pip install mcp")
    assert stderr.endswith(f"failed with exit status 1; see {str(log)!r}")
    assert len(stderr.splitlines()) == 1
    # The venv exists, so the capture hook already runs on its interpreter; the missing stamp makes
    # the next launcher try pip again.
    assert os.access(plugin.layout.python, os.X_OK)
    assert not Path(plugin.layout.stamp).exists()
    assert "No matching distribution found" in log.read_text(encoding="utf-8")
    print(f"cold bootstrap up to the failing pip run took {seconds:.1f} s")

    again = plugin.run("serve")

    assert again.returncode == 1
    assert again.stdout == b""
    assert again.stderr.decode().startswith("eventsync: error: pip install mcp")
    # Each launch tries pip twice: with the optional grammars, then without them.
    assert plugin.pip_runs() == 4


def test_session_start_installs_in_background(plugin: Plugin, tmp_path: Path) -> None:
    _venv_with_dependencies(plugin.layout)
    project = tmp_path / "project"
    project.mkdir()
    git.Repo.init(project).close()
    payload = json.dumps({"session_id": "s-boot", "cwd": str(project), "hook_event_name": "SessionStart",
                          "source": "startup"}).encode()
    [command] = hook_commands(plugin.root)["SessionStart"]
    env = {**plugin.env, "CLAUDE_PROJECT_DIR": str(project)}

    result = subprocess.run(["/bin/sh", "-c", command], input=payload, env=env, cwd=project, capture_output=True,
                            timeout=RUN_TIMEOUT, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout == b"" or isinstance(json.loads(result.stdout), dict), result.stdout
    log = plugin.data / BOOTSTRAP_LOG_NAME
    _wait_for(lambda: log.exists() and "eventsync: installed into" in log.read_text(encoding="utf-8"),
              BACKGROUND_TIMEOUT, f"the background bootstrap to finish ({log})")
    assert json.loads(Path(plugin.layout.stamp).read_text(encoding="utf-8")) == expected_stamp(plugin.layout.root)

    later = subprocess.run(["/bin/sh", "-c", command], input=payload, env=env, cwd=project, capture_output=True,
                           timeout=RUN_TIMEOUT, check=False)

    assert later.returncode == 0, later.stderr
    assert plugin.pip_runs() == 1


@pytest.mark.anyio
async def test_serve_from_bootstrapped_venv(plugin: Plugin, tmp_path: Path) -> None:
    _venv_with_dependencies(plugin.layout)
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    git.Repo.init(project).close()
    (project / "src" / "app.py").write_text("# @touchpoint app-entry\n", encoding="utf-8")
    server = load_json(".claude-plugin/plugin.json", plugin.root)["mcpServers"]["eventsync"]
    args = [arg.replace("${CLAUDE_PLUGIN_ROOT}", str(plugin.root)) for arg in server["args"]]
    env = {**plugin.env, "CLAUDE_PROJECT_DIR": str(project)}
    parameters = StdioServerParameters(command=server["command"], args=args, env=env, cwd=str(project))

    with anyio.fail_after(120):
        async with Client(parameters, mode="legacy") as client:
            emitted = await client.call_tool("emit_event", {"type": "note.added", "payload": {"text": "started"}})
            listed = await client.call_tool("list_touchpoints", {})

    assert not emitted.is_error, emitted.content
    assert not listed.is_error, listed.content
    assert [row["name"] for row in listed.structured_content["touchpoints"]] == ["app-entry"]
    assert plugin.pip_runs() == 1


def test_serve_needs_plugin_data(plugin: Plugin) -> None:
    plugin.env.pop("CLAUDE_PLUGIN_DATA")

    result = plugin.run("serve")

    assert result.returncode == 1
    assert result.stdout == b""
    assert b"CLAUDE_PLUGIN_DATA is not set" in result.stderr


def test_expected_stamp_rejects_bad_pyproject(tmp_path: Path) -> None:
    root = copy_plugin(tmp_path / "plugin")
    (root / "pyproject.toml").write_text("[project\n", encoding="utf-8")

    with pytest.raises(BootstrapError, match="cannot parse the plugin's metadata"):
        expected_stamp(str(root))
    assert issubclass(BootstrapError, EventsyncError)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_launcher_imports_stdlib_only() -> None:
    """The launcher runs before the venv exists, on an interpreter without eventsync's dependencies."""
    root = str(Path(__file__).resolve().parents[2])
    probe = (
        "import sys\n"
        f"sys.path.insert(0, {root!r})\n"
        "import mcp_server.plugin.launch\n"
        "third_party = {'pydantic', 'mcp', 'anyio', 'git', 'nats', 'networkx'}\n"
        "print(sorted(third_party & set(sys.modules)))\n"
    )

    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True,
                            timeout=RUN_TIMEOUT, check=True)

    assert result.stdout.strip() == "[]"
