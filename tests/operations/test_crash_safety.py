"""Crash safety: SIGKILL the server mid-burst while two other processes append; nothing is lost or doubled."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import Project

FILES = 50
PER_WRITER = 5000

WRITER = """
import os, sys
sys.path.insert(0, {package!r})
from mcp_server.capture.hook import run
root = {root!r}
env = {{"CLAUDE_PROJECT_DIR": root, "XDG_STATE_HOME": {state!r}}}
for i in range({count}):
    payload = ('{{"session_id":"{name}","hook_event_name":"PostToolUse","tool_name":"Edit",'
               '"tool_input":{{"file_path":"' + root + '/src/f' + str(i % {files}) + '.py"}},'
               '"tool_use_id":"toolu_{name}_' + str(i) + '"}}')
    run(payload.encode(), env)
"""


def _tables(database: Path) -> dict[str, list[tuple]]:
    connection = sqlite3.connect(database)
    try:
        return {
            "touchpoints": connection.execute("SELECT * FROM touchpoints ORDER BY path, line, name").fetchall(),
            "search": connection.execute("SELECT name, path FROM touchpoint_search ORDER BY path, name").fetchall(),
        }
    finally:
        connection.close()


def _saved(database: Path) -> int:
    try:
        connection = sqlite3.connect(database, timeout=5)
        try:
            return int(connection.execute("SELECT count(*) FROM events WHERE type = 'file.saved'").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.OperationalError:
        return 0


def test_sigkill_mid_burst_loses_nothing(project: Project, tmp_path: Path) -> None:
    for index in range(FILES):
        project.write(f"src/f{index}.py", f"# @touchpoint tp-{index}\n")
    project.runtime().close()
    database = project.root / ".eventsync" / "events.db"
    environment = {**os.environ, "CLAUDE_PROJECT_DIR": str(project.root)}
    server = subprocess.Popen([sys.executable, "-m", "mcp_server", "serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment, cwd=project.root)
    package = str(Path(__file__).resolve().parents[2])
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER.format(
            package=package, root=str(project.root), state=os.environ["XDG_STATE_HOME"], count=PER_WRITER,
            files=FILES, name=name)])
        for name in ("w1", "w2")
    ]

    try:
        for _ in range(6000):
            if _saved(database) >= 1000:
                break
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)
        saved_at_kill = _saved(database)
        server.wait(timeout=10)
    finally:
        for writer in writers:
            writer.wait(timeout=120)
        if server.poll() is None:
            server.kill()

    assert all(writer.returncode == 0 for writer in writers)
    assert server.returncode == -signal.SIGKILL
    runtime = project.runtime()
    try:
        runtime.catch_up()
        connection = runtime.log.connection
        saved = connection.execute("SELECT count(*), count(DISTINCT id) FROM events WHERE type = 'file.saved'").fetchone()
        incremental = _tables(database)
        runtime.rebuild("touchpoints")
        rebuilt = _tables(database)
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        runtime.close()

    assert 0 < saved_at_kill < 2 * PER_WRITER
    assert saved == (2 * PER_WRITER, 2 * PER_WRITER)
    assert len(incremental["touchpoints"]) == FILES
    assert incremental == rebuilt
    assert integrity == "ok"
