"""Benchmark: the capture hook's wall time against the interpreter's own start-up.

The agent waits for the PostToolUse hook after every edit, so the figure that
matters is the median wall time of the hook command exactly as ``eventsync
init`` writes it, compared in the same run with ``python -I -c pass`` on the
same interpreter. The hook runs with ``-S`` (no ``site``), which skips the
``.pth`` files of the environment's packages, so the stricter floor
``python -I -S -c pass`` is reported beside it. Runs alternate between the
commands so machine noise hits all of them alike.

Scenarios: an empty project; a log already holding 100,000 events; and a
second "session" firing hooks on the same project at the same time.

With ``--compare-with DIR``, where DIR contains another version's
``mcp_server`` package (for example ``git archive HEAD mcp_server | tar -x -C DIR``),
it instead times that version's hook script against this one's, interleaved,
on an ``Edit`` and a ``Bash`` payload, and prints the ratio.

Usage: python bench/bench_hook.py [--runs N] [--compare-with DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import git

from mcp_server.events import make_event
from mcp_server.install import init_project
from mcp_server.runtime import Runtime


def _payload(root: Path, index: int, session: str = "bench") -> bytes:
    return json.dumps({
        "session_id": session, "cwd": str(root), "hook_event_name": "PostToolUse", "tool_name": "Edit",
        "tool_input": {"file_path": str(root / "src" / "app.py"), "old_string": "a", "new_string": "b"},
        "tool_response": {"filePath": str(root / "src" / "app.py")}, "tool_use_id": f"toolu_{session}_{index}",
    }).encode()


def _time(command: list[str], stdin: bytes, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, input=stdin, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _measure(root: Path, runs: int) -> tuple[float, float, float]:
    """Return the median seconds of ``python -I -c pass``, ``python -I -S -c pass`` and the hook."""
    settings = json.loads((root / ".claude" / "settings.json").read_text())
    hook = shlex.split(settings["hooks"]["PostToolUse"][-1]["hooks"][0]["command"])
    env = {**os.environ, "CLAUDE_PROJECT_DIR": str(root)}
    baseline, bare, hooked = [], [], []
    for index in range(runs):
        baseline.append(_time([sys.executable, "-I", "-c", "pass"], b"", env))
        bare.append(_time([sys.executable, "-I", "-S", "-c", "pass"], b"", env))
        hooked.append(_time(hook, _payload(root, index), env))
    return statistics.median(baseline), statistics.median(bare), statistics.median(hooked)


def _project(folder: str, name: str) -> Path:
    root = Path(folder) / name
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("# @touchpoint bench\n" + "x = 1\n" * 200)
    git.Repo.init(root)
    init_project(str(root))
    return root


def _fill_log(root: Path, count: int) -> None:
    runtime = Runtime(str(root), environ={})
    batch = [make_event("file.saved", {"path": f"src/m{i % 500}.py"}, source="bench") for i in range(count)]
    for start in range(0, count, 10_000):
        runtime.log.append(batch[start : start + 10_000])
    runtime.close()


def _second_session(root: Path, stop: threading.Event) -> None:
    settings = json.loads((root / ".claude" / "settings.json").read_text())
    hook = shlex.split(settings["hooks"]["PostToolUse"][-1]["hooks"][0]["command"])
    env = {**os.environ, "CLAUDE_PROJECT_DIR": str(root)}
    index = 0
    while not stop.is_set():
        subprocess.run(hook, input=_payload(root, index, "other"), env=env, check=False)
        index += 1


def _bash_payload(root: Path, index: int) -> bytes:
    return json.dumps({
        "session_id": "bench", "cwd": str(root), "hook_event_name": "PostToolUse", "tool_name": "Bash",
        "tool_input": {"command": "pytest -q tests/ && git status --short",
                       "description": "Run the tests and show the status"},
        "tool_response": {"stdout": "", "stderr": "", "interrupted": False}, "tool_use_id": f"toolu_bash_{index}",
    }).encode()


def _compare(root: Path, other: Path, runs: int) -> None:
    """Print the median wall time of another version's hook script and this one's, per payload kind."""
    scripts = {"other": str(other / "mcp_server" / "hook_entry.py"),
               "this": str(Path(__file__).resolve().parents[1] / "mcp_server" / "hook_entry.py")}
    env = {**os.environ, "CLAUDE_PROJECT_DIR": str(root)}
    times: dict[tuple[str, str], list[float]] = {(version, kind): [] for version in scripts for kind in ("Edit", "Bash")}
    for index in range(runs):
        order = list(scripts.items()) if index % 2 else list(reversed(scripts.items()))
        for kind, stdin in (("Edit", _payload(root, index)), ("Bash", _bash_payload(root, index))):
            for version, script in order:
                times[(version, kind)].append(_time([sys.executable, "-I", "-S", script], stdin, env))
    for kind in ("Edit", "Bash"):
        other_median = statistics.median(times[("other", kind)])
        this_median = statistics.median(times[("this", kind)])
        print(f"{kind:<5} other {other_median * 1000:6.2f} ms | this {this_median * 1000:6.2f} ms | "
              f"this / other {this_median / other_median:5.3f}")


def _report(name: str, baseline: float, bare: float, hooked: float) -> None:
    print(f"{name:<28} -I -c pass {baseline * 1000:6.2f} ms | -I -S -c pass {bare * 1000:6.2f} ms | "
          f"hook {hooked * 1000:6.2f} ms | ratio {hooked / baseline:4.2f}x (vs -I -S: {hooked / bare:4.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="hook runs per scenario (default 200)")
    parser.add_argument("--compare-with", type=Path, metavar="DIR",
                        help="folder containing another version's mcp_server package to time against this one")
    args = parser.parse_args()
    print(f"python {platform.python_version()} at {sys.executable}; {os.cpu_count()} CPUs; {platform.platform()}")
    if args.compare_with is not None:
        with tempfile.TemporaryDirectory(prefix="eventsync-bench-") as folder:
            _compare(_project(folder, "compare"), args.compare_with.resolve(), args.runs)
        return

    with tempfile.TemporaryDirectory(prefix="eventsync-bench-") as folder:
        empty = _project(folder, "empty")
        _report("empty log", *_measure(empty, args.runs))

        full = _project(folder, "full")
        _fill_log(full, 100_000)
        _report("100,000 events in the log", *_measure(full, args.runs))

        busy = _project(folder, "busy")
        stop = threading.Event()
        writer = threading.Thread(target=_second_session, args=(busy, stop), daemon=True)
        writer.start()
        try:
            _report("second session writing", *_measure(busy, args.runs))
        finally:
            stop.set()
            writer.join(timeout=10)


if __name__ == "__main__":
    main()
