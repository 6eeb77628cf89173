"""The plugin's launch modes: the MCP server, the SessionStart hook and the bootstrap.

``hooks/run.sh`` finds a Python 3.11+ interpreter and runs :func:`main` through
``mcp_server/plugin_entry.py`` with one mode:

* ``serve`` brings the venv up to date (see :mod:`mcp_server.plugin.bootstrap`)
  and replaces itself with the MCP server running on the venv's interpreter.
* ``session-start`` starts the install in the background when the venv is
  missing or stale, then hands the hook payload to the capture hook.
* ``bootstrap`` installs in the foreground; the other two run it detached.

``EVENTSYNC_PLUGIN_PYTHON`` names an interpreter that already has eventsync
and its dependencies; with it no venv is made. Nothing here writes to stdout:
it belongs to the MCP protocol in ``serve`` and to Claude Code's hook output
in ``session-start``. Standard library only, like the bootstrap.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from mcp_server.errors import EventsyncError
from mcp_server.plugin.bootstrap import (
    LOCK_TIMEOUT_SECONDS,
    PIP_TIMEOUT_SECONDS,
    BootstrapError,
    PluginLayout,
    ensure_venv,
    expected_stamp,
    install_running,
    is_current,
)

__all__ = ["PYTHON_OVERRIDE_ENV", "main"]

PYTHON_OVERRIDE_ENV = "EVENTSYNC_PLUGIN_PYTHON"
"""Names an interpreter that already has eventsync and its dependencies; the plugin then makes no venv."""

_PLUGIN_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""The plugin root this code runs from (the parent of the ``mcp_server`` package)."""


def _layout(environ: dict[str, str] | os._Environ[str]) -> PluginLayout:
    """Build the layout for this plugin root and the data folder Claude Code names.

    Raises:
        BootstrapError: ``CLAUDE_PLUGIN_DATA`` is not set.
    """
    data = environ.get("CLAUDE_PLUGIN_DATA", "")
    if not data:
        raise BootstrapError(
            "CLAUDE_PLUGIN_DATA is not set; Claude Code sets it for plugin hooks and MCP servers. "
            "To run the launcher by hand, set it to a writable folder"
        )
    return PluginLayout(root=os.path.realpath(_PLUGIN_ROOT), data=data)


def _spawn_bootstrap(layout: PluginLayout) -> subprocess.Popen[bytes]:
    """Start ``bootstrap`` in a detached process whose output goes to bootstrap.log.

    The process has its own session and none of the caller's pipes, so it
    finishes the install even when Claude Code stops waiting for the caller.
    Claude Code 2.1.197 kills an MCP server that takes longer than
    ``MCP_TIMEOUT`` (30 s by default) to start, and it waits for a hook's
    stdout and stderr to close before it goes on.
    """
    os.makedirs(layout.data, exist_ok=True)
    entry = os.path.join(layout.root, "mcp_server", "plugin_entry.py")
    with open(layout.log, "a", encoding="utf-8") as log:
        return subprocess.Popen(
            [sys.executable, "-I", "-S", entry, "bootstrap"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, env={**os.environ, "CLAUDE_PLUGIN_DATA": layout.data},
        )


def _last_error(layout: PluginLayout) -> str:
    """Return the last error line the bootstrap wrote to its log, or a pointer to the log."""
    try:
        with open(layout.log, encoding="utf-8", errors="replace") as handle:
            errors = [line.strip() for line in handle if line.startswith("eventsync: error: ")]
    except OSError:
        errors = []
    if errors:
        return errors[-1].removeprefix("eventsync: error: ")
    return f"installing eventsync's dependencies failed; see {layout.log!r}"


def _exec(python: str, args: list[str], description: str) -> int:
    """Replace this process with ``python args``; return 1 with a message if that fails."""
    try:
        os.execv(python, [python, *args])
    except OSError as exc:
        print(f"eventsync: error: cannot start {description} with {python!r}: {exc.strerror or exc}", file=sys.stderr)
    return 1


def _session_start(environ: dict[str, str] | os._Environ[str]) -> int:
    """Start the bootstrap if the venv is stale, then hand stdin to the capture hook.

    The capture hook uses only the standard library, so until the venv is
    ready it runs on the interpreter running this function and no event is lost.
    """
    python = environ.get(PYTHON_OVERRIDE_ENV, "")
    if not python:
        python = sys.executable
        try:
            layout = _layout(environ)
            if is_current(layout, expected_stamp(layout.root)):
                python = layout.python
            elif not install_running(layout):
                _spawn_bootstrap(layout)
        except (EventsyncError, OSError) as exc:
            # A hook must not fail the session; the MCP server's launcher reports the same problem.
            print(f"eventsync: {exc}", file=sys.stderr)

    hook_entry = os.path.join(_PLUGIN_ROOT, "mcp_server", "hook_entry.py")
    _exec(python, ["-I", "-S", hook_entry], "the capture hook")
    return 0  # reached only when exec failed, and a hook must still exit 0


def _serve(environ: dict[str, str] | os._Environ[str]) -> int:
    """Exec the MCP server with the override interpreter, or with the venv after updating it."""
    python = environ.get(PYTHON_OVERRIDE_ENV, "")
    if not python:
        layout = _layout(environ)
        expected = expected_stamp(layout.root)
        if not is_current(layout, expected):
            started = time.monotonic()
            # The install runs detached so that it completes even if Claude Code gives up on this server.
            # A second bootstrap started meanwhile waits on the lock and then finds the venv current.
            try:
                status = _spawn_bootstrap(layout).wait(timeout=LOCK_TIMEOUT_SECONDS + PIP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                raise BootstrapError(
                    f"installing eventsync's dependencies did not finish in time; see {layout.log!r}"
                ) from None
            if status != 0 or not is_current(layout, expected):
                raise BootstrapError(_last_error(layout))
            print(f"eventsync: installed dependencies into {layout.venv} in {time.monotonic() - started:.1f} s",
                  file=sys.stderr)
        python = layout.python
    # -I keeps the working directory off sys.path: a project folder named mcp_server
    # must not shadow the plugin's package.
    return _exec(python, ["-I", "-m", "mcp_server", "serve"], "the MCP server")


def _bootstrap(environ: dict[str, str] | os._Environ[str]) -> int:
    layout = _layout(environ)
    changed = ensure_venv(layout)
    print(f"eventsync: {'installed into' if changed else 'already current:'} {layout.venv}", file=sys.stderr)
    return 0


_MODES = {"bootstrap": _bootstrap, "serve": _serve, "session-start": _session_start}


def main(argv: list[str] | None = None) -> int:
    """Run one launch mode (``bootstrap``, ``serve`` or ``session-start``); return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    mode = _MODES.get(args[0]) if len(args) == 1 else None
    if mode is None:
        print(f"eventsync plugin launcher: expected one of {', '.join(sorted(_MODES))}, got {args!r}", file=sys.stderr)
        return 2
    try:
        return mode(os.environ)
    except EventsyncError as exc:
        print(f"eventsync: error: {exc}", file=sys.stderr)
        return 1
