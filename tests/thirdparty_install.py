"""Builds and installs the example module package under tests/thirdparty, once per test session.

pip installs it into a temporary folder, not into the virtual environment, so
its entry points are visible only to the tests that put that folder on
``sys.path`` or ``PYTHONPATH``. The sources are copied first because building
writes ``build/`` and ``*.egg-info`` next to them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent / "thirdparty"

_installed: list[Path] = []


def install_example(factory: pytest.TempPathFactory) -> Path:
    """Return a folder holding the installed ``eventsync-example`` distribution, installing it on first use."""
    if _installed:
        return _installed[0]
    work = factory.mktemp("thirdparty")
    source = work / "src"
    target = work / "site"
    shutil.copytree(PACKAGE, source)
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--no-deps",
         "--no-build-isolation", "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, f"pip could not install tests/thirdparty:\n{completed.stdout}\n{completed.stderr}"
    _installed.append(target)
    return target
