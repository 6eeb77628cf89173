"""Benchmark: full index of a large source tree, and re-extraction of one saved file.

(a) ``Runtime.index_project`` over a tree of real source files (unpacked PyPI
sdists, passed as ``--tree``), against a plain Python scan that reads the same
files and looks for the marker bytes, and against ``rg -l -F @touchpoint`` on
the same file list when ripgrep is installed. Each is run once to warm the OS
page cache, then timed; the index runs on a fresh data folder each time, so it
does the whole job. Target: index ≤ 1.5 × the plain scan.

(b) One 2,000-line file with 20 touchpoints, symbols included: a Python module
of 20 functions, the same functions as methods of one class, and a TSX module
of 20 components. Timed, interleaved: ``extract`` from scratch (the cold path,
also against ``bytes.decode`` plus ``str.count`` of the same file); the first
call of a new ``Extractor``; and re-extraction by one ``Extractor`` after a
small edit (one line changed, or a marker line added, in the middle of the
file), against ``extract`` of the same bytes from scratch. Target: median of
the re-extraction < 5 ms.

Also measured: (a) on a copy of the tree with a marker in PERCENT % of the files
(``--marked PERCENT``).

The tree of record is ansible 12.3.0, sqlalchemy 2.1.9 and sympy 1.14.0 from PyPI, unpacked;
``--sdists`` downloads and unpacks them once with ``bench/sdist_tree.py``. (a) interleaves
the plain scan, the listing and the full index in each run and reports their medians.

Usage: python bench/bench_extract.py [--tree /path/to/unpacked/sdists | --sdists] [--runs R] [--marked PERCENT]
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
from mcp_server.touchpoints import Extractor, extract, language_for_path
from mcp_server.touchpoints.symbols import tree_sitter_available
from sdist_tree import DEFAULT_CACHE, fetch_tree


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
    """Time the plain scan, the listing and the full index, interleaved, and print their medians."""
    files = project_files(root)
    size = sum(os.path.getsize(os.path.join(root, path)) for path in files)
    print(f"(a) tree {root}: {len(files)} source files, {size / 1e6:.1f} MB")
    _plain_scan(root, files)
    timings: dict[str, list[float]] = {"plain": [], "listing": [], "index": [], "rg": []}
    marked = 0
    for _ in range(runs):
        timings["plain"].append(_timed(lambda: _plain_scan(root, files)))
        timings["listing"].append(_timed(lambda: project_files(root)))
        elapsed, _, marked = _full_index(root)
        timings["index"].append(elapsed)
        rg = _ripgrep(root, files)
        if rg is not None:
            timings["rg"].append(rg)
    plain, listing, index = (statistics.median(timings[key]) for key in ("plain", "listing", "index"))
    print(f"    medians of {runs} interleaved runs; files with markers: {marked}")
    print(f"    plain read + find : {plain * 1000:8.0f} ms  (given the file list)")
    print(f"    listing files     : {listing * 1000:8.0f} ms  (project_files, part of the full index)")
    print(f"    full index        : {index * 1000:8.0f} ms")
    print(f"    index - listing   : {(index - listing) * 1000:8.0f} ms  ({(index - listing) / plain:.2f} x plain; "
          f"target <= 1.5 x); whole index {index / (plain + listing):.2f} x plain + listing")
    if not timings["rg"]:
        print("    ripgrep           : not installed")
    else:
        rg = statistics.median(timings["rg"])
        print(f"    ripgrep -l -F     : {rg * 1000:8.0f} ms  (index is {index / rg:.2f} x ripgrep)")


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
    python = "\n".join(lines[:2000]).encode()
    _bench_file("gen/module.py", python, runs, b"values.append(10 * 50)", b"# @touchpoint extra-marker added\n")
    one_class = "\n".join(["class Service:", *("    " + line if line else "" for line in lines)][:2000]).encode()
    _bench_file("gen/service.py", one_class, runs, b"values.append(10 * 50)", b"    # @touchpoint extra-marker added\n")
    _bench_file("gen/panels.tsx", _tsx_file(), runs, b'<span key="50">', b"      {/* @touchpoint extra-marker added */}\n")


def _bench_file(path: str, data: bytes, runs: int, line_text: bytes, marker_line: bytes) -> None:
    """Time cold extraction and re-extraction after a small edit, interleaved so that they share the noise.

    A re-extraction alternates between the file and its edited copy on one
    :class:`Extractor`, so every timed call is one small edit away from the
    previous extraction of that path, as when an agent saves a file again.
    """
    middle = data.index(line_text, len(data) // 2)
    line_start = data.rfind(b"\n", 0, middle) + 1
    line_end = data.index(b"\n", middle)
    one_line = data[:line_start] + data[line_start:line_end].replace(b"0", b"7") + data[line_end:]
    new_marker = data[:line_start] + marker_line + data[line_start:]

    edits = {"line edit": (one_line, Extractor()), "new marker": (new_marker, Extractor())}
    for edited, extractor in edits.values():
        extractor.extract(path, data)
        if extractor.extract(path, edited) != extract(path, edited):
            raise SystemExit(f"{path}: re-extraction differs from a cold extraction; the benchmark is void")

    cold: list[float] = []
    first: list[float] = []
    baseline: list[float] = []
    again: dict[str, list[float]] = {name: [] for name in edits}
    for run in range(runs):
        for name, (edited, extractor) in edits.items():
            version = edited if run % 2 == 0 else data
            again[name].append(_timed(lambda: extractor.extract(path, version)))  # noqa: B023
        version = one_line if run % 2 == 0 else data
        cold.append(_timed(lambda: extract(path, version)))  # noqa: B023
        first.append(_timed(lambda: Extractor().extract(path, version)))  # noqa: B023
        baseline.append(_timed(lambda: version.decode("utf-8").count("@touchpoint")))  # noqa: B023

    cold_median, base = statistics.median(cold), statistics.median(baseline)
    found = extract(path, data)
    line_count = data.count(b"\n") + 1
    print(f"(b) {path}: {line_count} lines, {len(found.touchpoints)} touchpoints, "
          f"symbol of the first: {found.touchpoints[0].symbol}")
    print(f"    extract, cold          : {cold_median * 1000:8.3f} ms  "
          f"({cold_median / base:.0f} x decode+count at {base * 1000:.3f} ms)")
    first_median = statistics.median(first)
    print(f"    Extractor, first call  : {first_median * 1000:8.3f} ms  ({first_median / cold_median:.2f} x cold)")
    for name, timings in again.items():
        median = statistics.median(timings)
        print(f"    re-extract, {name:<11}: {median * 1000:8.3f} ms  "
              f"(target < 5 ms; {median / cold_median:.3f} x cold)")


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
    """Return a TSX module of ``blocks * lines_per_block`` lines that parses without errors."""
    header = ['import React from "react";', ""]
    spans = lines_per_block - 9
    lines = list(header)
    for block in range(blocks):
        if block == blocks - 1:
            spans -= len(header)  # the last block makes room for the header
        lines.append(f"// @touchpoint panel-{block} renders panel {block}")
        lines.append(f"export function Panel{block}(props: {{ items: string[] }}): JSX.Element {{")
        lines.append(f"  const total = props.items.length + {block};")
        lines.append("  return (")
        lines.append("    <div className=\"panel\">")
        lines += [f"      <span key=\"{n}\">{{props.items[{n}] ?? \"none\"}}</span>" for n in range(spans)]
        lines.append("      <p>{total}</p>")
        lines.append("    </div>")
        lines.append("  );")
        lines.append("}")
    return "\n".join(lines).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", help="folder of source files for (a); skipped without it and --sdists")
    parser.add_argument("--sdists", action="store_true",
                        help="use the pinned PyPI sdists of bench/sdist_tree.py as the tree, downloading them once")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of (a); (b) runs 200 times")
    parser.add_argument("--marked", type=int, default=0, metavar="PERCENT",
                        help="also index a copy of the tree with a marker in PERCENT %% of its files")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"tree-sitter {'installed' if tree_sitter_available() else 'not installed'}")
    tree = fetch_tree(DEFAULT_CACHE) if args.sdists else args.tree
    if tree:
        bench_index(os.path.realpath(tree), args.runs)
        if args.marked:
            bench_index(marked_copy(os.path.realpath(tree), args.marked), args.runs)
    bench_one_file(200)


if __name__ == "__main__":
    sys.exit(main())
