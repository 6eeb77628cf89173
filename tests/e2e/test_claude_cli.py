"""End-to-end test: the real Claude Code CLI edits a project that has eventsync installed.

``claude -p`` runs against ``fake_anthropic.py``, the scripted fake of the Anthropic Messages API
from the claude-e2e harness, listening on 127.0.0.1. The script makes Claude Code write a file
with two touchpoints, rename one of them with Edit and call eventsync's ``list_touchpoints`` MCP
tool. The test then checks the file on disk, the ``file.saved`` events the capture hook stored
and the tool result that Claude Code sent back to the fake model.

Where the test looks:

* the CLI: ``EVENTSYNC_CLAUDE_BIN``, else ``node_modules/.bin/claude`` under
  ``EVENTSYNC_CLAUDE_PREFIX`` (default ``~/.cache/eventsync/claude-code``, where ``.ci/run``
  installs it with npm);
* the harness: ``EVENTSYNC_CLAUDE_HARNESS``, else ``shared/harness/claude-e2e`` in the folder
  that contains this repository.

When either is missing the test skips, or fails if ``EVENTSYNC_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import git
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_HARNESS = REPO_ROOT.parent / "shared" / "harness" / "claude-e2e"
DEFAULT_CLAUDE_PREFIX = Path.home() / ".cache" / "eventsync" / "claude-code"
CLAUDE_CODE_VERSION = "2.1.197"
"""The CLI version that .ci/run installs and that the environment in _claude_env was tested with."""

MCP_TOOL = "mcp__eventsync__list_touchpoints"

# Every wait is bounded so that a hung CLI or server fails the test instead of stalling CI.
INIT_TIMEOUT = 30.0
SERVER_START_TIMEOUT = 10.0
CLAUDE_TIMEOUT = 60.0
EVENTS_TIMEOUT = 30.0
DIAGNOSTIC_TAIL_LINES = 150

APP_PATH = "src/app.py"
WRITTEN = (
    "# @touchpoint checkout-total Sums the cart\n"
    "def checkout_total(prices):\n"
    "    return sum(prices)\n"
    "\n"
    "\n"
    "# @touchpoint price-sum\n"
    "def price_sum(a, b):\n"
    "    return a + b\n"
)
EDIT_OLD = "# @touchpoint price-sum\n"
EDIT_NEW = "# @touchpoint price-total\n"
EDITED = WRITTEN.replace(EDIT_OLD, EDIT_NEW)
EXPECTED_TOUCHPOINTS = [
    # (name, path, line, description) as list_touchpoints should return them after the edit
    ("checkout-total", APP_PATH, 1, "Sums the cart"),
    ("price-total", APP_PATH, 6, ""),
]


# -- locating the CLI and the harness -----------------------------------------------------


def _missing(reason: str) -> NoReturn:
    """Skip the test, or fail it when CI requires every external service."""
    if os.environ.get("EVENTSYNC_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (EVENTSYNC_REQUIRE_SERVICES=1 makes this a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def _find_harness() -> Path:
    configured = os.environ.get("EVENTSYNC_CLAUDE_HARNESS")
    harness = Path(configured) if configured else DEFAULT_HARNESS
    if not (harness / "fake_anthropic.py").is_file():
        source = "EVENTSYNC_CLAUDE_HARNESS" if configured else "the default location"
        _missing(
            f"claude-e2e harness not found: {harness / 'fake_anthropic.py'} ({source}) does not exist; "
            "set EVENTSYNC_CLAUDE_HARNESS to the folder that contains fake_anthropic.py"
        )
    return harness


def _find_claude() -> Path:
    configured = os.environ.get("EVENTSYNC_CLAUDE_BIN")
    if configured:
        claude, source = Path(configured), "EVENTSYNC_CLAUDE_BIN"
    else:
        prefix = Path(os.environ.get("EVENTSYNC_CLAUDE_PREFIX") or DEFAULT_CLAUDE_PREFIX)
        claude, source = prefix / "node_modules" / ".bin" / "claude", "the npm prefix"
    if not (claude.is_file() and os.access(claude, os.X_OK)):
        _missing(
            f"Claude Code CLI not found: {claude} ({source}) is missing or not executable; run .ci/run, "
            f"or install @anthropic-ai/claude-code@{CLAUDE_CODE_VERSION} with npm and set EVENTSYNC_CLAUDE_BIN"
        )
    return claude


# -- processes ----------------------------------------------------------------------------


def _claude_env(port: int, home: Path) -> dict[str, str]:
    """Return the whole environment for claude; nothing is inherited from the test process."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "TERM": "dumb",
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ANTHROPIC_API_KEY": "sk-test-dummy",
        # Without these four, Claude Code 2.1.197 still looks up api.anthropic.com (bootstrap data,
        # the MCP registry, event logging), although ANTHROPIC_BASE_URL points elsewhere.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        # In -p mode Claude Code connects MCP servers in the background by default, so the first
        # model request can go out before eventsync's server has listed its tools. These two make
        # it wait. The wait is shorter than CLAUDE_TIMEOUT, so a server that never connects shows
        # up in claude's own output.
        "MCP_CONNECTION_NONBLOCKING": "0",
        "MCP_CONNECT_TIMEOUT_MS": "30000",
    }


def _eventsync(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run the installed ``eventsync`` command (or ``python -m mcp_server`` when there is no script)."""
    script = Path(sys.executable).with_name("eventsync")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "mcp_server"]
    # Both variables would point eventsync at another project or data folder.
    env = {key: value for key, value in os.environ.items() if key not in ("EVENTSYNC_HOME", "CLAUDE_PROJECT_DIR")}
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _netns_tools() -> tuple[str, str, str] | None:
    """Return the paths of unshare, nsenter and ip if this process can make a loopback-only network namespace."""
    if os.geteuid() != 0:
        return None
    unshare, nsenter, ip = (shutil.which(name) for name in ("unshare", "nsenter", "ip"))
    if unshare is None or nsenter is None or ip is None:
        return None
    try:
        probe = subprocess.run([unshare, "-n", ip, "link", "set", "lo", "up"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (unshare, nsenter, ip) if probe.returncode == 0 else None


@dataclass
class FakeModel:
    """A running fake_anthropic.py."""

    process: subprocess.Popen[bytes]
    port: int
    request_log: Path
    stderr_path: Path


@contextmanager
def _fake_model(harness: Path, script: Path, workdir: Path, netns: tuple[str, str, str] | None) -> Iterator[FakeModel]:
    """Run fake_anthropic.py on 127.0.0.1, in a new loopback-only network namespace when ``netns`` is given."""
    port_file = workdir / "fake-anthropic.port"
    request_log = workdir / "requests.jsonl"
    stderr_path = workdir / "fake-anthropic.stderr"
    command = [
        sys.executable, str(harness / "fake_anthropic.py"), "--script", str(script),
        "--log", str(request_log), "--port-file", str(port_file),
    ]
    if netns is not None:
        unshare, _, ip = netns
        # A new network namespace starts with loopback down; `exec` keeps the server's pid, so
        # claude can later join this namespace through /proc/<pid>/ns/net.
        command = [unshare, "-n", "sh", "-c", f'{shlex.quote(ip)} link set lo up && exec "$@"', "sh", *command]

    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(command, stdout=stderr, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not port_file.exists():
            if process.poll() is not None:
                pytest.fail(f"fake_anthropic.py exited with status {process.returncode} before listening:\n"
                            + stderr_path.read_text(errors="replace"), pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"fake_anthropic.py did not listen within {SERVER_START_TIMEOUT:.0f} s:\n"
                            + stderr_path.read_text(errors="replace"), pytrace=False)
            time.sleep(0.05)
        yield FakeModel(process, int(port_file.read_text()), request_log, stderr_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class ClaudeRun:
    """The outcome of one ``claude -p`` process."""

    command: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool


def _run_claude(command: list[str], cwd: Path, env: dict[str, str]) -> ClaudeRun:
    """Run claude in its own process group so that a timeout also stops its hooks and MCP server."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=CLAUDE_TIMEOUT)
        timed_out = False
    except subprocess.TimeoutExpired:
        # claude is not reaped yet, so its pid still names its own process group.
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=10)
        timed_out = True
    return ClaudeRun(command, process.returncode, stdout, stderr, time.monotonic() - started, timed_out)


# -- reading results ----------------------------------------------------------------------


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _tail(path: Path, lines: int = DIAGNOSTIC_TAIL_LINES) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    skipped = f"(first {len(text) - lines} lines left out)\n" if len(text) > lines else ""
    return skipped + "\n".join(text[-lines:])


def _tool_result_value(block: dict[str, Any]) -> Any:
    """Decode the JSON in a tool_result block, whose content is a string or a list of text blocks."""
    content = block.get("content")
    if isinstance(content, list):
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    assert isinstance(content, str), f"tool_result content is neither text nor text blocks: {block!r}"
    return json.loads(content)


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _model_script(project: Path) -> dict[str, Any]:
    """Return the fake model's turns: Write, Edit, the MCP tool call, then the final text."""
    app = str(project / APP_PATH)
    return {
        "turns": [
            {"tool_use": {"name": "Write", "input": {"file_path": app, "content": WRITTEN}}},
            {"tool_use": {"name": "Edit", "input": {"file_path": app, "old_string": EDIT_OLD, "new_string": EDIT_NEW}}},
            {"tool_use": {"name": MCP_TOOL, "input": {}}},
            {"text": "done"},
        ],
        "side_text": "ok",
    }


@contextmanager
def _print_on_failure(describe: Callable[[], str]) -> Iterator[None]:
    """Print ``describe()`` when the block raises; pytest shows it with the failure."""
    try:
        yield
    except BaseException:
        print(describe())
        raise


# -- the test -----------------------------------------------------------------------------


def test_claude_edits_reach_log_and_mcp(tmp_path: Path) -> None:
    harness = _find_harness()
    claude = _find_claude()

    project = tmp_path / "project"
    project.mkdir()
    project = project.resolve()
    git.Repo.init(project).close()
    home = tmp_path / "home"
    home.mkdir()
    workdir = tmp_path / "work"
    workdir.mkdir()

    init = _eventsync("init", str(project), cwd=project, timeout=INIT_TIMEOUT)
    assert init.returncode == 0, f"eventsync init failed ({init.returncode}):\n{init.stdout}{init.stderr}"

    script = workdir / "script.json"
    script.write_text(json.dumps(_model_script(project), indent=2), encoding="utf-8")

    netns = _netns_tools()
    if netns is None:
        print("NOTE: cannot create a network namespace (needs root, unshare, nsenter and ip); "
              "claude runs without network isolation and is kept offline by its environment only")

    debug_log = workdir / "claude-debug.log"
    hook_log = project / ".eventsync" / "hook.log"
    with _fake_model(harness, script, workdir, netns) as fake:
        command = [
            str(claude), "-p", "do it", "--output-format", "json",
            "--allowedTools", f"Write,Edit,{MCP_TOOL}",
            "--debug-file", str(debug_log),
        ]
        if netns is not None:
            command = [netns[1], f"--net=/proc/{fake.process.pid}/ns/net", "--", *command]
        run = _run_claude(command, project, _claude_env(fake.port, home))

    requests = _read_jsonl(fake.request_log)
    main_requests = [record for record in requests if record.get("kind") == "main"]

    def describe() -> str:
        sections = [
            f"claude command: {shlex.join(run.command)}",
            f"claude exit status: {'timed out' if run.timed_out else run.returncode} after {run.seconds:.1f} s",
            "claude stdout:\n" + run.stdout,
            "claude stderr:\n" + run.stderr,
            f"hook log {hook_log}:\n" + _tail(hook_log),
            "requests the fake model answered:\n" + "\n".join(
                json.dumps({key: record.get(key) for key in ("seq", "path", "kind", "turn", "warning")})
                for record in requests
            ),
            f"fake model stderr {fake.stderr_path}:\n" + _tail(fake.stderr_path),
            f"claude debug log {debug_log}:\n" + _tail(debug_log),
        ]
        return "\n\n".join(sections)

    with _print_on_failure(describe):
        assert not run.timed_out, f"claude did not finish within {CLAUDE_TIMEOUT:.0f} s"
        assert run.returncode == 0, f"claude exited with status {run.returncode}"
        result = json.loads(run.stdout)
        assert result.get("is_error") is False, f"claude reported an error: {result!r}"
        assert result.get("result") == "done"
        assert not result.get("permission_denials"), f"tools were denied: {result.get('permission_denials')!r}"
        session_id = result.get("session_id")
        assert isinstance(session_id, str), f"claude's result has no session_id: {result!r}"
        assert session_id, "claude's result has an empty session_id"

        app = project / APP_PATH
        assert app.is_file(), f"{app} was not written"
        assert app.read_text(encoding="utf-8") == EDITED

        # Each tool call the fake model made, in order, as (tool name, tool_use id).
        tool_calls = [
            (block["name"], block["id"])
            for record in main_requests
            for block in (record.get("answer") or {}).get("content", [])
            if block.get("type") == "tool_use"
        ]
        file_tool_use_ids = [tool_use_id for name, tool_use_id in tool_calls if name in ("Write", "Edit")]

        listed = _eventsync(
            "events", "--json", "--type", "file.saved", "--asc", "--project", str(project),
            cwd=project, timeout=EVENTS_TIMEOUT,
        )
        assert listed.returncode == 0, f"eventsync events failed ({listed.returncode}):\n{listed.stderr}"
        saved = [event for event in json.loads(listed.stdout) if event["payload"].get("path") == APP_PATH]
        assert len(saved) == 2, f"expected 2 file.saved events for {APP_PATH}, got:\n{listed.stdout}"
        assert [event["payload"]["tool"] for event in saved] == ["Write", "Edit"]
        assert [event["metadata"]["session_id"] for event in saved] == [session_id, session_id]
        assert [event["metadata"]["tool_use_id"] for event in saved] == file_tool_use_ids
        assert [event["source"] for event in saved] == ["hook", "hook"]
        assert saved[0]["position"] < saved[1]["position"]
        # The hook hashes the file right after each tool call, so each hash is that step's content.
        assert saved[0]["payload"]["content_hash"] == _sha256(WRITTEN)
        assert saved[1]["payload"]["content_hash"] == _sha256(EDITED)

        warnings = [record["warning"] for record in requests if record.get("warning")]
        assert not warnings, f"claude did not offer a scripted tool to the model: {warnings}"
        tool_use_ids = [tool_use_id for name, tool_use_id in tool_calls if name == MCP_TOOL]
        assert len(tool_use_ids) == 1, f"the fake model should have called {MCP_TOOL} once: {tool_use_ids}"
        last_messages = main_requests[-1]["body"].get("messages", [])
        tool_results = [
            block
            for message in last_messages
            if isinstance(message.get("content"), list)
            for block in message["content"]
            if isinstance(block, dict) and block.get("type") == "tool_result" and block.get("tool_use_id") == tool_use_ids[0]
        ]
        assert len(tool_results) == 1, (
            f"expected one tool_result for {tool_use_ids[0]} in the last request, found {len(tool_results)}"
        )
        assert not tool_results[0].get("is_error"), f"{MCP_TOOL} failed: {tool_results[0].get('content')!r}"

        listing = _tool_result_value(tool_results[0])
        touchpoints = [(row["name"], row["path"], row["line"], row["description"]) for row in listing["touchpoints"]]
        assert touchpoints == EXPECTED_TOUCHPOINTS
        assert "price-sum" not in {row["name"] for row in listing["touchpoints"]}
        assert listing["total"] == len(EXPECTED_TOUCHPOINTS)
        assert listing["next_offset"] is None

    isolation = "in a loopback-only network namespace" if netns else "without network isolation"
    print(f"claude -p ran {isolation} in {run.seconds:.1f} s")
