"""The plugin's virtual environment: what it must contain, and installing it.

Claude Code copies a plugin's files but installs no Python packages for it, so
the plugin keeps its own virtual environment in ``CLAUDE_PLUGIN_DATA/venv``,
which survives plugin updates. :func:`ensure_venv` creates that venv with the
interpreter running this module, installs the ``dependencies`` listed in the
plugin's ``pyproject.toml`` with pip, and writes a ``.pth`` file that puts the
plugin root on the venv's ``sys.path``. It also installs the extras named in
:data:`PLUGIN_EXTRAS` (the tree-sitter grammars), and goes on without them when
pip cannot install them. The venv therefore always runs the code
of the plugin version Claude Code loaded, and nothing is built or written
inside ``CLAUDE_PLUGIN_ROOT``. A stamp file in the venv records the plugin
version, the ``pyproject.toml`` hash and the plugin root, and pip runs again
only when one of them changes. A file lock in the data folder lets one process
install while others wait.

:mod:`mcp_server.plugin.launch` decides when to call this. Standard library
only: it runs before any dependency is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from typing import Any

from mcp_server.errors import EventsyncError

__all__ = [
    "BOOTSTRAP_LOG_NAME",
    "LOCK_TIMEOUT_SECONDS",
    "PIP_TIMEOUT_SECONDS",
    "BootstrapError",
    "PluginLayout",
    "ensure_venv",
    "install_running",
    "is_current",
    "expected_stamp",
]

BOOTSTRAP_LOG_NAME = "bootstrap.log"
STAMP_NAME = "eventsync-stamp.json"
PTH_NAME = "eventsync-plugin.pth"
STAMP_FORMAT = 1

LOCK_TIMEOUT_SECONDS = 600.0
"""How long an install waits for another process's install: a cold one took about 30 s on a 2-vCPU machine."""

PIP_TIMEOUT_SECONDS = 900.0
"""Upper bound for one pip run, so a stalled download cannot hold the lock forever."""

LOG_ROTATE_BYTES = 1024 * 1024
"""Size at which bootstrap.log is moved to bootstrap.log.1 before the next install."""

PLUGIN_EXTRAS = ("symbols",)
"""Optional dependencies of ``pyproject.toml`` the plugin installs too: tree-sitter finds the symbols of
24 languages. Without them the symbols of those languages come from a line-based reader."""

_LOCK_POLL_SECONDS = 0.2


class BootstrapError(EventsyncError):
    """Raised when the plugin's venv cannot be created or its dependencies cannot be installed."""


@dataclass(frozen=True, slots=True)
class PluginLayout:
    """The locations of the plugin's code and of its per-user state."""

    root: str
    """The plugin root (``CLAUDE_PLUGIN_ROOT``): ``.claude-plugin/``, ``hooks/``, ``mcp_server/``."""
    data: str
    """The plugin data folder (``CLAUDE_PLUGIN_DATA``), kept across plugin updates."""

    @property
    def venv(self) -> str:
        return os.path.join(self.data, "venv")

    @property
    def python(self) -> str:
        return os.path.join(self.venv, "bin", "python")

    @property
    def stamp(self) -> str:
        return os.path.join(self.venv, STAMP_NAME)

    @property
    def lock(self) -> str:
        return os.path.join(self.data, "bootstrap.lock")

    @property
    def log(self) -> str:
        return os.path.join(self.data, BOOTSTRAP_LOG_NAME)

    @property
    def hook_entry(self) -> str:
        return os.path.join(self.root, "mcp_server", "hook_entry.py")


# -- what the venv should contain ---------------------------------------------------------


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise BootstrapError(f"cannot read {path!r}: {exc.strerror or exc}; reinstall the eventsync plugin") from exc


def expected_stamp(root: str) -> dict[str, Any]:
    """Return the stamp a venv matching the plugin at ``root`` carries.

    Raises:
        BootstrapError: ``pyproject.toml`` or ``.claude-plugin/plugin.json`` is missing or invalid.
    """
    pyproject_path = os.path.join(root, "pyproject.toml")
    manifest_path = os.path.join(root, ".claude-plugin", "plugin.json")
    pyproject_bytes = _read_bytes(pyproject_path)
    try:
        pyproject = tomllib.loads(pyproject_bytes.decode("utf-8"))
        manifest = json.loads(_read_bytes(manifest_path))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise BootstrapError(f"cannot parse the plugin's metadata under {root!r}: {exc}") from exc

    project = pyproject.get("project", {})
    requirements = project.get("dependencies", [])
    if not _is_string_list(requirements):
        raise BootstrapError(f"'project.dependencies' in {pyproject_path!r} must be a list of strings")
    extras = project.get("optional-dependencies", {})
    optional: list[str] = []
    for extra in PLUGIN_EXTRAS:
        listed = extras.get(extra, []) if isinstance(extras, dict) else None
        if not _is_string_list(listed):
            raise BootstrapError(f"'project.optional-dependencies.{extra}' in {pyproject_path!r} must be a list of strings")
        optional += [item for item in listed if item not in optional]
    return {
        "format": STAMP_FORMAT,
        "plugin_root": os.path.realpath(root),
        "plugin_version": str(manifest.get("version", "")),
        "pyproject_sha256": hashlib.sha256(pyproject_bytes).hexdigest(),
        "requirements": requirements,
        "optional_requirements": optional,
    }


def _is_string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _read_stamp(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def is_current(layout: PluginLayout, expected: dict[str, Any]) -> bool:
    """Return True when the venv's interpreter exists and its stamp equals ``expected``."""
    return os.access(layout.python, os.X_OK) and _read_stamp(layout.stamp) == expected


# -- installing ---------------------------------------------------------------------------


class _FileLock:
    """An exclusive ``flock`` on a file, taken by polling so that the wait is bounded."""

    def __init__(self, path: str, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._fd = -1

    def __enter__(self) -> _FileLock:
        import fcntl  # POSIX only, like the venv layout (bin/python) this module manages

        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self._fd)
                    raise BootstrapError(
                        f"another process held {self._path!r} for more than {self._timeout:.0f} s while installing "
                        "eventsync's dependencies; if no install is running, delete the file and start a new session"
                    ) from None
                time.sleep(_LOCK_POLL_SECONDS)

    def __exit__(self, *exc_info: object) -> None:
        os.close(self._fd)  # closing the descriptor releases the flock


def _note(log: Any, message: str) -> None:
    log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
    log.flush()


def _run(command: list[str], log: Any, description: str, hint: str = "") -> None:
    """Run ``command`` with its output in ``log``; raise with the log's path and ``hint`` when it fails."""
    _note(log, "running " + " ".join(command))
    try:
        completed = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=PIP_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BootstrapError(
            f"{description} timed out after {PIP_TIMEOUT_SECONDS:.0f} s; see {log.name!r}"
        ) from exc
    except OSError as exc:
        raise BootstrapError(f"{description} could not start ({exc.strerror or exc}); see {log.name!r}") from exc
    if completed.returncode != 0:
        raise BootstrapError(f"{description} failed with exit status {completed.returncode}; see {log.name!r}{hint}")


def _venv_is_usable(layout: PluginLayout) -> bool:
    if not os.path.isfile(os.path.join(layout.venv, "pyvenv.cfg")) or not os.access(layout.python, os.X_OK):
        return False
    # A venv whose base interpreter was removed or upgraded in place can keep its files but not start.
    try:
        probe = subprocess.run(
            [layout.python, "-I", "-S", "-c", "pass"], stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _site_packages(layout: PluginLayout, log: Any) -> str:
    completed = subprocess.run(
        [layout.python, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
    )
    folder = completed.stdout.strip()
    if completed.returncode != 0 or not os.path.isdir(folder):
        _note(log, completed.stderr)
        raise BootstrapError(f"cannot find the site-packages folder of {layout.python!r}; see {log.name!r}")
    return folder


def _write_atomically(path: str, text: str) -> None:
    staging = f"{path}.tmp-{os.getpid()}"
    with open(staging, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(staging, path)


def _install(layout: PluginLayout, expected: dict[str, Any], log: Any) -> None:
    if not _venv_is_usable(layout):
        if os.path.isdir(layout.venv) and not os.path.islink(layout.venv):
            _note(log, f"removing unusable venv {layout.venv}")
            shutil.rmtree(layout.venv)
        elif os.path.lexists(layout.venv):
            os.remove(layout.venv)
        # The base interpreter, not a venv's: this may run on the venv's own python.
        base = getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", layout.venv], log, f"creating the venv {layout.venv!r} with {base}",
             "; on Debian and Ubuntu the venv module needs the python3-venv package")

    # Without a stamp the venv counts as stale, so a failed install is retried by the next launcher.
    if os.path.exists(layout.stamp):
        os.remove(layout.stamp)
    requirements = list(expected["requirements"])
    optional = [item for item in expected["optional_requirements"] if item not in requirements]
    pip = [layout.python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    try:
        # One pip run for both: a second one would cost about as much as starting pip again.
        if requirements or optional:
            _run([*pip, *requirements, *optional], log, "pip install " + " ".join(requirements + optional))
    except BootstrapError:
        if not optional:
            raise
        # The grammars ship as platform wheels; where none fits, eventsync runs without them.
        _note(log, f"installing without {' '.join(optional)}; symbols of languages other than Python come "
                   "from the line-based reader")
        if requirements:
            _run([*pip, *requirements], log, "pip install " + " ".join(requirements))

    # A .pth line puts the plugin root on sys.path for every interpreter start without -S,
    # so the server imports mcp_server from the plugin version Claude Code loaded.
    _write_atomically(os.path.join(_site_packages(layout, log), PTH_NAME), expected["plugin_root"] + "\n")
    _write_atomically(layout.stamp, json.dumps(expected, indent=2) + "\n")


def ensure_venv(layout: PluginLayout) -> bool:
    """Make the venv in ``layout.data`` match the plugin; return True if it had to install.

    Safe to call from several processes at once: one installs while the others
    wait on the lock and then find the venv current.

    Raises:
        BootstrapError: the plugin metadata is unreadable, the lock wait timed out,
            or creating the venv or running pip failed (the message names the log).
    """
    expected = expected_stamp(layout.root)
    if is_current(layout, expected):
        return False
    try:
        os.makedirs(layout.data, exist_ok=True)
        with _FileLock(layout.lock, LOCK_TIMEOUT_SECONDS):
            if is_current(layout, expected):
                return False
            if os.path.exists(layout.log) and os.path.getsize(layout.log) > LOG_ROTATE_BYTES:
                os.replace(layout.log, layout.log + ".1")
            with open(layout.log, "a", encoding="utf-8") as log:
                started = time.monotonic()
                _note(log, f"installing eventsync {expected['plugin_version']} from {layout.root} into {layout.venv}")
                _install(layout, expected, log)
                _note(log, f"installed in {time.monotonic() - started:.1f} s")
    except OSError as exc:
        raise BootstrapError(
            f"installing eventsync's dependencies into {layout.venv!r} failed: {exc}; check that {layout.data!r} "
            f"is writable, and see {layout.log!r}"
        ) from exc
    return True


def install_running(layout: PluginLayout) -> bool:
    """Return True when another process holds the install lock right now."""
    import fcntl  # POSIX only, like _FileLock

    try:
        fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
