"""Values that JSON or UTF-8 cannot carry are rejected at append with the field named, never stored."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Project
from mcp_server.errors import InvalidEventError
from mcp_server.events import make_event
from mcp_server.store.base import EventLog
from mcp_server.store.memory import MemoryEventLog
from mcp_server.store.sqlite import SQLiteEventLog

BACKENDS: dict[str, Callable[[Path], EventLog]] = {
    "memory": lambda folder: MemoryEventLog(),
    "sqlite": lambda folder: SQLiteEventLog(str(folder / "events.db")),
}

# (payload, field named in the error, word naming the problem)
UNENCODABLE = [
    ({"x": math.nan}, "payload.x", "nan"),
    ({"estimate": math.inf}, "payload.estimate", "inf"),
    ({"points": [1.0, -math.inf]}, "payload.points[1]", "-inf"),
    ({"nested": {"deep": {"ratio": math.nan}}}, "payload.nested.deep.ratio", "nan"),
    ({"text": "a\ud800b"}, "payload.text", "surrogate"),
    ({"path": "b\udce9.py"}, "payload.path", "surrogate"),
    ({"names": ["ok", "\udfff"]}, "payload.names[1]", "surrogate"),
    ({"\ud800key": 1}, "payload", "surrogate"),
]


@pytest.fixture(params=sorted(BACKENDS))
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    opened = BACKENDS[request.param](tmp_path)
    yield opened
    opened.close()


@pytest.mark.parametrize(("payload", "field", "problem"), UNENCODABLE)
def test_unencodable_payload_rejected(log: EventLog, payload: dict, field: str, problem: str) -> None:
    valid = make_event("note.added", {"text": "fine"}, source="test")
    invalid = make_event("note.added", payload, source="test")

    with pytest.raises(InvalidEventError) as raised:
        log.append([valid, invalid])

    message = str(raised.value)
    assert field in message
    assert problem in message
    assert invalid["id"] in message
    assert log.head() == 0


def test_unencodable_metadata_rejected(log: EventLog) -> None:
    event = make_event("note.added", {"text": "fine"}, source="test", session_id="s-\ud800")

    with pytest.raises(InvalidEventError, match=r"metadata\.session_id .*surrogate"):
        log.append([event])
    assert log.head() == 0


def test_unencodable_source_rejected(log: EventLog) -> None:
    event = make_event("note.added", {"text": "fine"}, source="cli-\udce9")

    with pytest.raises(InvalidEventError, match=r"source .*surrogate"):
        log.append([event])


def test_valid_unicode_kept(log: EventLog) -> None:
    payload = {"text": "café ☕ 😀 naïve", "path": "src/été.py", "ratio": 0.5, "big": 1e308}

    [stored] = log.append([make_event("note.added", payload, source="test")])

    assert log.get(stored.id).payload == payload


def _cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_server", *args], capture_output=True, text=True, timeout=60, check=False,
        cwd=project.root, env={**os.environ, "CLAUDE_PROJECT_DIR": str(project.root)},
    )


@pytest.mark.parametrize(("payload", "field", "problem"), [
    ('{"text": "\\ud800"}', "payload.text", "surrogate"),
    ('{"x": NaN}', "payload.x", "nan"),
    ('{"n": 1e999}', "payload.n", "inf"),
])
def test_emit_reports_field(project: Project, payload: str, field: str, problem: str) -> None:
    result = _cli(project, "emit", "note.added", "--payload", payload)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert field in result.stderr
    assert problem in result.stderr
    assert "malformed JSON" not in result.stderr
