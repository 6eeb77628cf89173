"""eventsync as a Claude Code plugin: its Python environment and its launcher.

The plugin's files are ``.claude-plugin/plugin.json``, ``hooks/hooks.json`` and
``hooks/run.sh``; this package is what ``run.sh`` runs. :mod:`.bootstrap` keeps
the plugin's venv in ``CLAUDE_PLUGIN_DATA`` in step with the plugin, and
:mod:`.launch` starts the MCP server and the SessionStart hook on top of it.
Standard library only: it runs before the plugin's dependencies exist.
"""

from __future__ import annotations

from mcp_server.plugin.bootstrap import BOOTSTRAP_LOG_NAME, BootstrapError, PluginLayout, ensure_venv, expected_stamp
from mcp_server.plugin.launch import PYTHON_OVERRIDE_ENV, main

__all__ = [
    "BOOTSTRAP_LOG_NAME",
    "PYTHON_OVERRIDE_ENV",
    "BootstrapError",
    "PluginLayout",
    "ensure_venv",
    "main",
    "expected_stamp",
]
