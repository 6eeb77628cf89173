"""The package's public surface: ``__all__`` names resolve, and the hook path stays stdlib-only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mcp_server
from mcp_server import errors


def test_all_names_resolve() -> None:
    for name in mcp_server.__all__:
        assert getattr(mcp_server, name) is not None


def test_errors_share_one_base() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.EventsyncError)


def test_hook_imports_stay_light() -> None:
    package_parent = str(Path(mcp_server.__file__).parents[1])
    probe = (
        "import sys\n"
        f"sys.path.insert(0, {package_parent!r})\n"
        "import mcp_server.capture.hook\n"
        "heavy = {'pydantic', 'mcp', 'sqlite3', '_sqlite3', 'anyio', 'json', 're', 'typing', 'hashlib'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
