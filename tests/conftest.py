"""Shared fixtures: temporary git projects with eventsync installed, and the real hook command."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import pytest

from mcp_server.install import init_project
from mcp_server.runtime import Runtime

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class HookRun:
    """What one hook process did."""

    returncode: int
    stdout: bytes
    stderr: bytes


@dataclass
class Project:
    """A temporary git repository with eventsync installed by ``init``."""

    root: Path

    @property
    def hook_command(self) -> str:
        settings = json.loads((self.root / ".claude" / "settings.json").read_text())
        return str(settings["hooks"]["PostToolUse"][-1]["hooks"][0]["command"])

    def write(self, relative: str, content: str | bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def run_hook(self, payload: dict[str, Any] | str | bytes, *, env: dict[str, str] | None = None) -> HookRun:
        """Pipe ``payload`` into the hook command exactly as settings.json configures it."""
        if isinstance(payload, dict):
            data = json.dumps(payload).encode()
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = payload
        environment = {**os.environ, "CLAUDE_PROJECT_DIR": str(self.root), **(env or {})}
        completed = subprocess.run(
            ["/bin/sh", "-c", self.hook_command], input=data, capture_output=True, env=environment,
            cwd=self.root, timeout=30, check=False,
        )
        return HookRun(completed.returncode, completed.stdout, completed.stderr)

    def runtime(self) -> Runtime:
        return Runtime(str(self.root), environ={})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A git repository with eventsync installed; spill files go to a folder of its own."""
    root = tmp_path / "project"
    root.mkdir()
    git.Repo.init(root)
    init_project(str(root))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("EVENTSYNC_HOME", raising=False)
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)
    return Project(root.resolve())


def load_fixture(relative: str, root: Path, recorded_root: str) -> dict[str, Any]:
    """Load a recorded payload with its project paths moved into ``root``."""
    text = (FIXTURES / relative).read_text(encoding="utf-8")
    return json.loads(text.replace(recorded_root, str(root)))


def require_service(name: str, available: Callable[[], bool]) -> None:
    """Skip when a server is missing, unless CI demands every service (``EVENTSYNC_REQUIRE_SERVICES=1``)."""
    if available():
        return
    message = f"{name} is not reachable on this machine"
    if os.environ.get("EVENTSYNC_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and EVENTSYNC_REQUIRE_SERVICES=1 requires it")
    pytest.skip(message)
