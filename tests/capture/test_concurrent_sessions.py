"""Eight sessions fire 500 hook runs each at one project while two readers catch up: nothing is lost or doubled.

Each session is its own process calling the hook's ``run()`` 500 times: the
code behind the hook command, minus the interpreter start-up. 4,000 real hook
processes cost about 75 s of CPU on the 2-core development machine, and the
start-up adds nothing that can lose or double an event. Two reader processes,
standing in for the MCP servers of two sessions, ingest and run every
projection meanwhile, so inbox writes, ingestion and projection transactions
overlap the whole time. The readers handle store errors the way the
server's tailer does: log the error and retry.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import multiprocessing.synchronize
import os
import subprocess
import sys
from pathlib import Path

from conftest import Project

from mcp_server.store.base import EventFilter

SESSIONS = 8
RUNS_PER_SESSION = 500
FILES = SESSIONS * RUNS_PER_SESSION
START_TIMEOUT = 120.0

READER = """
import logging, os, sys, time
from mcp_server.errors import EventsyncError
from mcp_server.runtime import Runtime
logging.basicConfig(level=logging.WARNING)
root, stop = sys.argv[1], sys.argv[2]
runtime = Runtime(root, environ={})
while True:
    finished = os.path.exists(stop)
    try:
        runtime.catch_up()
    except EventsyncError as exc:
        logging.error("reader: %s; retrying", exc)
        time.sleep(1.0)
        continue
    if finished:
        break
    time.sleep(0.05)
runtime.close()
"""


def _payload(root: str, number: int, session: int) -> bytes:
    path = os.path.join(root, "src", f"f{number}.py")
    return json.dumps({
        "session_id": f"s-{session}", "cwd": root, "hook_event_name": "PostToolUse", "tool_name": "Write",
        "tool_input": {"file_path": path, "content": f"# @touchpoint tp-{number}\n"},
        "tool_response": {"type": "create", "filePath": path}, "tool_use_id": f"toolu_07_{number}",
    }).encode()


def _session(root: str, session: int, start: multiprocessing.synchronize.Event, log_path: str) -> None:
    """Fire this session's hook runs once every session is ready; record stdout and stderr in ``log_path``."""
    from mcp_server.capture.hook import run

    with open(log_path, "w", encoding="utf-8") as log:
        sys.stderr = log
        start.wait(START_TIMEOUT)
        for index in range(RUNS_PER_SESSION):
            stdout = io.StringIO()
            status = run(_payload(root, session * RUNS_PER_SESSION + index, session), {"CLAUDE_PROJECT_DIR": root},
                         stdout)  # type: ignore[arg-type]
            if status != 0 or stdout.getvalue():
                log.write(f"run {index}: status {status}, stdout {stdout.getvalue()!r}\n")


def test_eight_sessions_lose_nothing(project: Project, tmp_path: Path) -> None:
    for number in range(FILES):
        project.write(f"src/f{number}.py", f"# @touchpoint tp-{number}\n")
    project.runtime().close()
    stop = tmp_path / "stop"
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    readers = [
        subprocess.Popen([sys.executable, "-c", READER, str(project.root), str(stop)], env=environment,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    logs = [tmp_path / f"session-{session}.log" for session in range(SESSIONS)]
    sessions = [context.Process(target=_session, args=(str(project.root), session, start, str(logs[session])))
                for session in range(SESSIONS)]

    for process in sessions:
        process.start()
    start.set()
    for process in sessions:
        process.join(timeout=300)
    stop.touch()
    reader_output = [reader.communicate(timeout=300) for reader in readers]

    runtime = project.runtime()
    page = runtime.query_events(EventFilter(types=("file.saved",)), limit=1)
    ids = {row[0] for row in runtime.log.connection.execute("SELECT id FROM events WHERE type = 'file.saved'")}
    rows, total = runtime.list_touchpoints(limit=FILES + 1)
    runtime.close()
    session_logs = "".join(log.read_text() for log in logs)
    reader_logs = b"".join(out + err for out, err in reader_output).decode()
    hook_log = project.root / ".eventsync" / "hook.log"
    everything = session_logs + reader_logs + (hook_log.read_text() if hook_log.exists() else "")

    assert [process.exitcode for process in sessions] == [0] * SESSIONS
    assert session_logs == ""
    assert [reader.returncode for reader in readers] == [0, 0], reader_logs[-3000:]
    assert "database is locked" not in everything
    assert "SQLITE_BUSY" not in everything
    assert "held the write lock" not in everything
    assert page.total == FILES
    assert len(ids) == FILES
    assert total == FILES
    assert sorted((row.name, row.path, row.line) for row in rows) == sorted(
        (f"tp-{number}", f"src/f{number}.py", 1) for number in range(FILES)
    )
