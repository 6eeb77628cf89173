"""A long session: 50,000 captured events with two servers open keep the WAL and server memory bounded."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import Project
from mcp_server.store.base import EventFilter

EVENTS = 50_000
PATHS = 500
WAL_LIMIT_DURING = 64 * 1024 * 1024
WAL_LIMIT_IDLE = 4 * 1024 * 1024
RSS_GROWTH_LIMIT = 50 * 1024 * 1024

WRITER = """
import sys
sys.path.insert(0, {package!r})
from mcp_server.capture.hook import run
root = {root!r}
env = {{"CLAUDE_PROJECT_DIR": root, "XDG_STATE_HOME": {state!r}}}
for i in range({count}):
    payload = ('{{"session_id":"long","hook_event_name":"PostToolUse","tool_name":"Edit",'
               '"tool_input":{{"file_path":"' + root + '/src/m' + str(i % {paths}) + '.py"}},'
               '"tool_use_id":"toolu_long_' + str(i) + '"}}')
    run(payload.encode(), env)
"""


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def _wal_size(database: Path) -> int:
    try:
        return os.path.getsize(str(database) + "-wal")
    except OSError:
        return 0


def _count_saved(database: Path) -> int:
    connection = sqlite3.connect(database, timeout=10)
    try:
        return int(connection.execute("SELECT count(*) FROM events WHERE type = 'file.saved'").fetchone()[0])
    finally:
        connection.close()


def test_wal_and_memory_stay_bounded(project: Project) -> None:
    for index in range(PATHS):
        project.write(f"src/m{index}.py", f"# @touchpoint module-{index}\n")
    project.runtime().close()
    database = project.root / ".eventsync" / "events.db"
    environment = {**os.environ, "CLAUDE_PROJECT_DIR": str(project.root)}
    servers = [subprocess.Popen([sys.executable, "-m", "mcp_server", "serve"], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment,
                                cwd=project.root) for _ in range(2)]
    wal_samples: list[int] = []
    stop = threading.Event()

    def sample_wal() -> None:
        while not stop.is_set():
            wal_samples.append(_wal_size(database))
            stop.wait(0.5)

    sampler = threading.Thread(target=sample_wal, daemon=True)
    try:
        time.sleep(2.0)  # let both servers finish importing before measuring their start-up memory
        rss_start = [_rss(server.pid) for server in servers]
        sampler.start()
        writer = subprocess.run(
            [sys.executable, "-c", WRITER.format(package=str(Path(__file__).resolve().parents[2]),
                                                 root=str(project.root), state=os.environ["XDG_STATE_HOME"],
                                                 count=EVENTS, paths=PATHS)],
            timeout=600, check=True,
        )
        for _ in range(1200):
            if _count_saved(database) == EVENTS:
                break
            time.sleep(0.25)
        for _ in range(240):
            if _wal_size(database) <= WAL_LIMIT_IDLE:
                break
            time.sleep(0.25)
        wal_idle = _wal_size(database)
        rss_end = [_rss(server.pid) for server in servers]
        alive = [server.poll() is None for server in servers]
    finally:
        stop.set()
        for server in servers:
            server.kill()
            server.wait(timeout=10)

    assert writer.returncode == 0
    assert alive == [True, True]
    assert max(wal_samples) <= WAL_LIMIT_DURING
    assert wal_idle <= WAL_LIMIT_IDLE
    assert all(end - start <= RSS_GROWTH_LIMIT for start, end in zip(rss_start, rss_end)), (rss_start, rss_end)
    runtime = project.runtime()
    try:
        page = runtime.query_events(EventFilter(types=("file.saved",)), limit=20)
        integrity = runtime.log.connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        runtime.close()
    assert page.total == EVENTS
    assert len(page.events) == 20
    assert integrity == "ok"
