"""Benchmark: reconciling one Bash command on a git repository of 20,000 files.

After each ``command.executed`` the reconcile projection runs ``git status``
(through gitpython), compares the files it lists and the files the log
already recorded with their recorded state, and emits ``file.saved`` for what
the command changed. The figure that matters is the time the projection
spends on one such event, here the median of ``ConsumerRunner.catch_up`` for
the reconcile projection alone after a command that rewrote one file. The
baseline, measured in the same run and interleaved with it, is a plain
``git status --porcelain`` started with ``subprocess``: the least any
git-based reconciliation pays.

The repository contains 20,000 committed files in 200 folders. The log has
recorded 500 of them (files the agent edited earlier), and one of them is
dirty before the commands start, as in a real session.

A second part times the hook command on the paths the reconcile projection
feeds: a ``UserPromptSubmit`` that hands over 20 pending notices and a
``SessionStart`` that returns a full watch list, beside a plain edit, against
``python -I -c pass`` in the same run.

Usage: python bench/bench_reconcile.py [--files N] [--runs N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import git

from mcp_server import ids
from mcp_server.capture import notices
from mcp_server.capture.worktree import Worktree
from mcp_server.events import make_event
from mcp_server.install import init_project
from mcp_server.modules.reconcile import Reconciler
from mcp_server.runtime import Runtime

RECORDED_FILES = 500
TARGET_MS = 150.0


def _make_repository(root: Path, files: int) -> None:
    per_folder = 100
    for number in range(files):
        folder = root / "src" / f"pkg{number // per_folder:03d}"
        if number % per_folder == 0:
            folder.mkdir(parents=True)
        (folder / f"mod{number:05d}.py").write_text(f"# module {number}\nVALUE = {number}\n")
    repo = git.Repo.init(root)
    init_project(str(root))
    Runtime(str(root), environ={}).close()  # writes .eventsync/.gitignore before the commit
    repo.git.add("--all")
    repo.git.commit("-q", "-m", "initial", env={"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                                              "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"})
    subprocess.run(["git", "status", "--porcelain"], cwd=root, check=True, capture_output=True)  # refresh the index


def _path(number: int) -> str:
    return f"src/pkg{number // 100:03d}/mod{number:05d}.py"


def _record_files(runtime: Runtime, root: Path, files: int) -> None:
    """Store file.saved events for files an agent edited earlier, with their real hash, size and time."""
    step = max(1, files // RECORDED_FILES)
    batch = []
    for number in range(0, files, step)[:RECORDED_FILES]:
        path = root / _path(number)
        status = path.stat()
        content_hash = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
        batch.append(make_event(
            "file.saved",
            {"path": _path(number), "tool": "Edit", "content_hash": content_hash, "size": status.st_size,
             "mtime_ns": status.st_mtime_ns, "exists": True},
            source="hook", session_id="bench",
        ))
    runtime.log.append(batch)
    (root / _path(1)).write_text("# dirty before the session\n")
    runtime.log.append([make_event("session.started", {"source": "startup"}, source="hook", session_id="bench")])
    runtime.catch_up()


def _command_event(index: int) -> dict[str, object]:
    event_id = ids.derived_event_id("bench", str(index))
    return make_event(
        "command.executed",
        {"command": f"sed -i s/VALUE/V{index}/ file", "cwd": ".", "interrupted": False, "duration_ms": 5,
         "stale_files": []},
        source="hook", session_id="bench", event_id=event_id,
    )


def _time_reconcile(runtime: Runtime, reconciler: Reconciler, root: Path, index: int) -> tuple[float, int]:
    target = root / _path(1000 + index * 7)
    target.write_text(f"# rewritten by command {index}\n")
    runtime.log.append([_command_event(index)])
    head = runtime.log.head()
    start = time.perf_counter()
    runtime.runner.catch_up(reconciler)
    elapsed = time.perf_counter() - start
    emitted = len(runtime.log.read_after(head))
    runtime.catch_up()  # let the other projections follow outside the measurement
    return elapsed, emitted


def _time_git_status(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["git", "status", "--porcelain"], cwd=root, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _time_worktree_status(worktree: Worktree) -> float:
    start = time.perf_counter()
    worktree.status()
    return time.perf_counter() - start


def _time_command(command: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, bytes]:
    start = time.perf_counter()
    completed = subprocess.run(command, input=stdin, env=env, capture_output=True, check=True)
    return time.perf_counter() - start, completed.stdout


def _hook_scenarios(runs: int) -> None:
    """Time the hook command when it hands notices or a watch list to Claude Code, against the bare interpreter."""
    with tempfile.TemporaryDirectory(prefix="eventsync-bench-hook-") as folder:
        root = Path(folder) / "project"
        (root / "src").mkdir(parents=True)
        (root / "src" / "app.py").write_text("x = 1\n")
        git.Repo.init(root)
        init_project(str(root))
        data = str(root / ".eventsync")
        notices.write_watch_paths(data, [str(root / "src" / f"m{number}.py") for number in range(256)])
        hook = [sys.executable, "-I", "-S", str(Path(__file__).resolve().parents[1] / "mcp_server" / "hook_entry.py")]
        env = {**os.environ, "CLAUDE_PROJECT_DIR": str(root)}
        edit = {"session_id": "quiet", "hook_event_name": "PostToolUse", "tool_name": "Edit",
                "tool_input": {"file_path": str(root / "src" / "app.py")}, "tool_response": {}}
        prompt = {"session_id": "busy", "hook_event_name": "UserPromptSubmit", "prompt": "go on"}
        start = {"session_id": "new", "hook_event_name": "SessionStart", "source": "startup"}

        timings: dict[str, list[float]] = {"python -I -c pass": [], "PostToolUse, no notices": [],
                                           "UserPromptSubmit, 20 notices": [], "SessionStart, 256 watch paths": []}
        for index in range(runs):
            for number in range(20):
                notices.write_notice(data, "busy", f"n{number}", f"2026-12-04T10:00:{number:02d}.000000Z "
                                     f"src/module_{number}.py changed by session other (Edit)")
            timings["python -I -c pass"].append(_time_command([sys.executable, "-I", "-c", "pass"], b"", env)[0])
            payload = json.dumps({**edit, "tool_use_id": f"toolu_{index}"}).encode()
            timings["PostToolUse, no notices"].append(_time_command(hook, payload, env)[0])
            elapsed, output = _time_command(hook, json.dumps(prompt).encode(), env)
            assert output.count(b"\\n- ") == 20, output
            timings["UserPromptSubmit, 20 notices"].append(elapsed)
            timings["SessionStart, 256 watch paths"].append(_time_command(hook, json.dumps(start).encode(), env)[0])

    baseline = statistics.median(timings["python -I -c pass"])
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"hook: {name:<32} median {median * 1000:6.2f} ms | ratio to python -I -c pass {median / baseline:4.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000, help="files in the repository (default 20000)")
    parser.add_argument(
        "--runs", type=int, default=30, help="commands reconciled, and hook runs per scenario (default 30)"
    )
    args = parser.parse_args()
    print(f"python {platform.python_version()} at {sys.executable}; {os.cpu_count()} CPUs; {platform.platform()}")
    print(f"git: {subprocess.run(['git', '--version'], capture_output=True, text=True, check=True).stdout.strip()}")

    with tempfile.TemporaryDirectory(prefix="eventsync-bench-reconcile-") as folder:
        root = Path(folder) / "repo"
        started = time.perf_counter()
        _make_repository(root, args.files)
        print(f"made a repository of {args.files} committed files in {time.perf_counter() - started:.1f} s")

        runtime = Runtime(str(root), environ={})
        reconciler = next(p for p in runtime.projections if isinstance(p, Reconciler))
        _record_files(runtime, root, args.files)
        worktree = Worktree(str(root))

        projection, baseline, status_only, emitted = [], [], [], []
        for index in range(args.runs):
            baseline.append(_time_git_status(root))
            elapsed, count = _time_reconcile(runtime, reconciler, root, index)
            projection.append(elapsed)
            emitted.append(count)
            status_only.append(_time_worktree_status(worktree))
        runtime.close()

    median_projection = statistics.median(projection) * 1000
    median_baseline = statistics.median(baseline) * 1000
    median_status = statistics.median(status_only) * 1000
    print(f"events emitted per command: {sorted(set(emitted))} (one file.saved expected)")
    print(f"git status --porcelain (subprocess)        median {median_baseline:7.2f} ms")
    print(f"gitpython git status -z --porcelain=v2 -uall median {median_status:7.2f} ms")
    print(f"reconcile projection, one command          median {median_projection:7.2f} ms "
          f"(max {max(projection) * 1000:.2f} ms) | ratio {median_projection / median_baseline:4.2f}x | "
          f"target < {TARGET_MS:.0f} ms: {'met' if median_projection < TARGET_MS else 'MISSED'}")
    _hook_scenarios(args.runs)


if __name__ == "__main__":
    main()
