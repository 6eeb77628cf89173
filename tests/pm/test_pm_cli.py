"""``eventsync pm``: the same operations as the tools, with the tools' fields under ``--json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import Project
from mcp_server.pm.results import ProjectStatusOut, TaskChangeOut
from pm_support import store_with_cycle


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_server", "pm", *args], capture_output=True, text=True, timeout=60, check=False,
        cwd=root, env={**os.environ, "CLAUDE_PROJECT_DIR": str(root)},
    )


def _json(root: Path, *args: str) -> Any:
    result = _cli(root, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_case_through_cli(project: Project) -> None:
    _json(project.root, "create-project", "shop")
    for title in ("A", "B", "C"):
        _json(project.root, "add", "shop", title)
    _json(project.root, "update", "A", "--depends-on", "B")
    _json(project.root, "update", "B", "--depends-on", "C")

    closing = _cli(project.root, "update", "C", "--depends-on", "A")
    itself = _cli(project.root, "update", "A", "--depends-on", "A", "--in", "shop")
    ready = _json(project.root, "ready", "shop")
    completed = _json(project.root, "complete", "C")
    status = _json(project.root, "status", "shop")

    assert closing.returncode == 1
    assert "C → A → B → C" in closing.stderr
    assert itself.returncode == 1
    assert "itself" in itself.stderr
    assert ready == [{"id": "c", "title": "C"}]
    assert set(completed) == set(TaskChangeOut.model_fields)
    assert completed["unblocked"] == [{"id": "b", "title": "B"}]
    assert set(status) == set(ProjectStatusOut.model_fields)
    assert [task["id"] for task in status["ready"]] == ["b"]
    assert status["project"]["progress"] == {"completed": 1, "total": 3, "percent": 33.3}


def test_stored_cycle_through_cli(project: Project, tmp_path: Path) -> None:
    root = store_with_cycle(project.root, tmp_path)

    ready = _cli(root, "ready", "imported")
    status = _cli(root, "status", "imported")

    assert ready.returncode == 0, ready.stderr
    assert ready.stdout.split() == ["z", "Z"]
    assert "X → Y → X" in ready.stderr
    assert "blocked      x  X  waits for y  (cycle)" in status.stdout


def test_assign_show_and_entities(project: Project) -> None:
    _json(project.root, "create-project", "shop")
    _json(project.root, "add", "shop", "Write docs", "--touchpoint", "checkout-total", "--estimate", "2")
    assigned = _json(project.root, "assign", "write-docs", "Dana")
    shown = _json(project.root, "show", "Write docs")
    entity = _json(project.root, "entity", "create", "milestone", "--attr", "name=Beta", "--attr", "week=3",
                   "--link", "includes=task:write-docs")
    projects = _cli(project.root, "projects")

    assert assigned["task"]["assignee"] == "Dana"
    assert [entry["kind"] for entry in shown["timeline"]] == ["assigned", "created"]
    assert shown["task"]["touchpoints"] == ["checkout-total"]
    assert entity["attributes"] == {"name": "Beta", "week": 3}
    assert entity["links"] == [{"relation": "includes", "node": "task:write-docs"}]
    assert "shop  shop  0/1 (0%)" in projects.stdout
