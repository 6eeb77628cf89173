"""Benchmark: the plugin's PostToolUse command against the one ``eventsync init`` writes.

Claude Code runs a hook's command string with ``/bin/sh -c``. The plugin's
command first checks for the venv's interpreter in ``CLAUDE_PLUGIN_DATA`` and
then ``exec``s it on ``mcp_server/hook_entry.py``, so after the bootstrap it
should cost what ``init``'s command costs. Before the venv exists it falls back
to ``hooks/run.sh``, which looks for a Python 3.11+ on PATH; that path runs only
until the first bootstrap finishes. All three commands get the same ``Edit``
payload under ``/bin/sh -c``, runs interleaved, and ``init``'s command is the
baseline of the ratios.

Usage: python bench/bench_plugin_hook.py [--runs N]
"""

from __future__ import annotations

import argparse
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

from mcp_server.install import init_project

REPO_ROOT = Path(__file__).resolve().parents[1]


def _payload(root: Path, index: int) -> bytes:
    return json.dumps({
        "session_id": "bench", "cwd": str(root), "hook_event_name": "PostToolUse", "tool_name": "Edit",
        "tool_input": {"file_path": str(root / "src" / "app.py"), "old_string": "a", "new_string": "b"},
        "tool_response": {"filePath": str(root / "src" / "app.py")}, "tool_use_id": f"toolu_bench_{index}",
    }).encode()


def _time(command: str, stdin: bytes, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(["/bin/sh", "-c", command], input=stdin, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=150, help="runs per command (default 150)")
    args = parser.parse_args()
    print(f"python {platform.python_version()} at {sys.executable}; {os.cpu_count()} CPUs; {platform.platform()}")

    hooks = json.loads((REPO_ROOT / "hooks" / "hooks.json").read_text(encoding="utf-8"))["hooks"]
    plugin_command = hooks["PostToolUse"][0]["hooks"][0]["command"]

    with tempfile.TemporaryDirectory(prefix="eventsync-bench-") as folder:
        root = Path(folder) / "project"
        (root / "src").mkdir(parents=True)
        (root / "src" / "app.py").write_text("# @touchpoint bench\n" + "x = 1\n" * 200)
        git.Repo.init(root).close()
        init_command = init_project(str(root)).hook_command

        with_venv = Path(folder) / "data with venv"
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--without-pip", str(with_venv / "venv")], check=True)
        without_venv = Path(folder) / "data without venv"
        without_venv.mkdir()

        common = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", folder), "CLAUDE_PROJECT_DIR": str(root),
                  "CLAUDE_PLUGIN_ROOT": str(REPO_ROOT)}
        commands = {
            "init command (baseline)": (init_command, common),
            "plugin, venv ready": (plugin_command, {**common, "CLAUDE_PLUGIN_DATA": str(with_venv)}),
            "plugin, before bootstrap": (plugin_command, {**common, "CLAUDE_PLUGIN_DATA": str(without_venv)}),
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for index in range(args.runs):
            for name, (command, env) in commands.items():
                times[name].append(_time(command, _payload(root, index), env))

    baseline = statistics.median(times["init command (baseline)"])
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<26} median {median * 1000:6.2f} ms | ratio {median / baseline:4.2f}x")


if __name__ == "__main__":
    main()
