"""Helpers shared by the plugin tests: copying the plugin out of the repository and reading its manifests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

PLUGIN_FILES = (".claude-plugin", "hooks", "mcp_server", "pyproject.toml", "README.md", ".mcp.json")
"""The parts of a clone that the plugin uses. ``.mcp.json`` is the repository's own server entry,
which the manifest's ``eventsync`` server must replace."""


def copy_plugin(destination: Path) -> Path:
    """Copy the plugin's files from this repository to ``destination``, without caches; return it."""
    destination.mkdir(parents=True)
    for name in PLUGIN_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, destination / name)
    return destination


def load_json(relative: str, root: Path = REPO_ROOT) -> Any:
    return json.loads((root / relative).read_text(encoding="utf-8"))


def hook_commands(root: Path = REPO_ROOT) -> dict[str, list[str]]:
    """Return every command string in ``hooks/hooks.json``, by hook event."""
    hooks = load_json("hooks/hooks.json", root)["hooks"]
    return {
        event: [handler["command"] for group in groups for handler in group["hooks"]]
        for event, groups in hooks.items()
    }
