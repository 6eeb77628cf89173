"""Benchmark: full index of a large source tree, and re-extraction of one saved file.

(a) ``Runtime.index_project`` over a tree of real source files (unpacked PyPI
sdists, passed as ``--tree``), against a plain Python scan that reads the same
files and looks for the marker bytes, and against ``rg -l -F @touchpoint`` on
the same file list when ripgrep is installed. Each is run once to warm the OS
page cache, then timed; the index runs on a fresh data folder each time, so it
does the whole job. Target: index ≤ 1.5 × the plain scan.

(b) ``extract`` of one 2,000-line Python file with 20 touchpoints, symbols
included, against ``bytes.decode`` plus ``str.count`` of the same file.
Target: median < 5 ms.

Also measured: (a) on a copy of the tree with a marker in PERCENT % of the files
(``--marked PERCENT``), and (b) on a 2,000-line TSX file with 20 touchpoints.

Usage: python bench/bench_extract.py --tree /path/to/unpacked/sdists [--runs R] [--marked PERCENT]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from mcp_server.indexer import project_files
from mcp_server.runtime import Runtime
from mcp_server.touchpoints import extract, language_for_path
from mcp_server.touchpoints.symbols import tree_sitter_available


def _plain_scan(root: str, files: list[str]) -> int:
    found = 0
    for path in files:
        with open(os.path.join(root, path), "rb") as handle:
            if b"@touchpoint" in handle.read():
                found += 1
    return found


def _ripgrep(root: str, files: list[str]) -> float | None:
    if shutil.which("rg") is None:
        return None
    started = time.perf_counter()
    for chunk in range(0, len(files), 2000):
        subprocess.run(["rg", "-l", "-F", "--no-ignore", "@touchpoint", *files[chunk : chunk + 2000]],
                       cwd=root, capture_output=True, check=False)
    return time.perf_counter() - started


def _full_index(root: str) -> tuple[float, int, int]:
    data = tempfile.mkdtemp(prefix="eventsync-bench-")
    try:
        runtime = Runtime(root, environ={"EVENTSYNC_HOME": data})
        try:
            started = time.perf_counter()
            report = runtime.index_project()
            elapsed = time.perf_counter() - started
            return elapsed, report.files, report.changed
        finally:
            runtime.close()
    finally:
        shutil.rmtree(data, ignore_errors=True)


def bench_index(root: str, runs: int) -> None:
    files = project_files(root)
    size = sum(os.path.getsize(os.path.join(root, path)) for path in files)
    print(f"(a) tree {root}: {len(files)} source files, {size / 1e6:.1f} MB")
    _plain_scan(root, files)
    plain = min(_timed(lambda: _plain_scan(root, files)) for _ in range(runs))
    listing = min(_timed(lambda: project_files(root)) for _ in range(runs))
    indexed = [_full_index(root) for _ in range(runs)]
    best = min(elapsed for elapsed, _, _ in indexed)
    rg = _ripgrep(root, files)
    rg = min([rg, *(_ripgrep(root, files) for _ in range(runs - 1))]) if rg is not None else None
    print(f"    plain read + find : {plain * 1000:8.0f} ms  (given the file list)")
    print(f"    listing files     : {listing * 1000:8.0f} ms  (project_files, part of the full index)")
    print(f"    full index        : {best * 1000:8.0f} ms  files with markers: {indexed[0][2]}")
    print(f"    index - listing   : {(best - listing) * 1000:8.0f} ms  ({(best - listing) / plain:.2f} x plain; "
          f"target <= 1.5 x); whole index {best / (plain + listing):.2f} x plain + listing")
    if rg is None:
        print("    ripgrep           : not installed")
    else:
        print(f"    ripgrep -l -F     : {rg * 1000:8.0f} ms  (index is {best / rg:.2f} x ripgrep)")


def _timed(function: object) -> float:
    started = time.perf_counter()
    function()  # type: ignore[operator]
    return time.perf_counter() - started


def bench_one_file(runs: int) -> None:
    lines: list[str] = []
    for block in range(20):
        lines.append(f"# @touchpoint step-{block} handles block {block}")
        lines.append(f"def step_{block}(values):")
        lines += [f"    values.append({block} * {n})  # keep order" for n in range(97)]
        lines.append("")
    _bench_file("gen/module.py", "\n".join(lines[:2000]).encode(), runs)
    _bench_file("gen/panels.tsx", _tsx_file(), runs)


def _bench_file(path: str, data: bytes, runs: int) -> None:
    extract(path, data)
    timings = [_timed(lambda: extract(path, data)) for _ in range(runs)]
    baseline = [_timed(lambda: data.decode("utf-8").count("@touchpoint")) for _ in range(runs)]
    median, base = statistics.median(timings), statistics.median(baseline)
    found = extract(path, data)
    line_count = data.count(b"\n") + 1
    print(f"(b) {path}: {line_count} lines, {len(found.touchpoints)} touchpoints, "
          f"symbol of the first: {found.touchpoints[0].symbol}")
    print(f"    extract median    : {median * 1000:8.3f} ms  (target < 5 ms; {median / base:.0f} x decode+count "
          f"at {base * 1000:.3f} ms)")


def marked_copy(root: str, percent: int) -> str:
    """Return a copy of ``root`` where every (100 / percent)-th listed file carries a marker.

    The copy lives beside ``root`` and is made once. Markers go into ``#``-comment
    languages only, above a ``def`` line in Python files so symbols resolve.
    """
    target = f"{root.rstrip(os.sep)}-marked-{percent}"
    if os.path.isdir(target):
        return target
    staging = target + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(root, staging, symlinks=True)
    files = [path for path in project_files(staging) if language_for_path(path) in _HASH_COMMENT_LANGUAGES]
    step = max(1, round(len(project_files(staging)) * percent / 100))
    for number, path in enumerate(files[:: max(1, len(files) // step)][:step]):
        _insert_marker(os.path.join(staging, path), number)
    os.rename(staging, target)
    return target


_HASH_COMMENT_LANGUAGES = {"python", "yaml", "shell", "toml", "ini"}


def _insert_marker(path: str, number: int) -> None:
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    at = next((index for index, line in enumerate(lines) if line.startswith(b"def ")), 0)
    lines.insert(at, f"# @touchpoint bench-{number} inserted for the full-index benchmark".encode())
    with open(path, "wb") as handle:
        handle.write(b"\n".join(lines))


def _tsx_file(blocks: int = 20, lines_per_block: int = 100) -> bytes:
    lines = ['import React from "react";', ""]
    for block in range(blocks):
        lines.append(f"// @touchpoint panel-{block} renders panel {block}")
        lines.append(f"export function Panel{block}(props: {{ items: string[] }}): JSX.Element {{")
        lines.append(f"  const total = props.items.length + {block};")
        lines.append("  return (")
        lines.append("    <div className=\"panel\">")
        lines += [f"      <span key=\"{n}\">{{props.items[{n}] ?? \"none\"}}</span>" for n in range(lines_per_block - 8)]
        lines.append("      <p>{total}</p>")
        lines.append("    </div>")
        lines.append("  );")
        lines.append("}")
    return "\n".join(lines[:2000]).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", help="folder of source files for (a); skipped without it")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of (a); (b) runs 200 times")
    parser.add_argument("--marked", type=int, default=0, metavar="PERCENT",
                        help="also index a copy of the tree with a marker in PERCENT %% of its files")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"tree-sitter {'installed' if tree_sitter_available() else 'not installed'}")
    if args.tree:
        bench_index(os.path.realpath(args.tree), args.runs)
        if args.marked:
            bench_index(marked_copy(os.path.realpath(args.tree), args.marked), args.runs)
    bench_one_file(200)


if __name__ == "__main__":
    sys.exit(main())
