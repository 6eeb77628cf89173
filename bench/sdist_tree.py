"""Fetch the source tree that ``bench_extract.py --tree`` indexes: pinned PyPI sdists, unpacked.

Downloads the sdists below with ``pip download --no-deps --no-binary :all:``
from the package index pip is configured for, checks each archive against its
SHA-256, and unpacks it into ``CACHE/trees/NAME-VERSION``. Archives and trees
stay in the cache, so a second run neither downloads nor unpacks again.
Prints the tree folder (``CACHE/trees``) on the last line of its output.

pip prepares each sdist's metadata after the download, which runs its build
backend. ``--no-build-isolation`` makes that use the current environment's
setuptools, so pip installs no build dependencies.

Usage: python bench/sdist_tree.py [--cache FOLDER]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile

SDISTS = (
    ("ansible", "12.3.0", "02721f6fb432ddd47f1044ac49b04b5e9ae08890bd427def8df3db1607aeec51"),
    ("sqlalchemy", "2.1.9", "d700a8b2edfb26282a470333d6bc4a454c4acda4d201a3bea7b72fa76c217d28"),
    ("sympy", "1.14.0", "d3d3fe8df1e5a0b42f0e7bdf50541697dbe7d23746e894990c030e2b05e72517"),
)
"""(project, version, SHA-256 of the ``.tar.gz``) of each sdist in the tree."""

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "eventsync", "bench-sdists")


class FetchError(Exception):
    """An sdist could not be downloaded, verified or unpacked."""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(archives: str, project: str, version: str) -> str:
    archive = os.path.join(archives, f"{project}-{version}.tar.gz")
    if os.path.exists(archive):
        return archive
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
        "--dest", archives, f"{project}=={version}",
    ]
    print("running:", " ".join(command), flush=True)
    if subprocess.run(command, check=False).returncode != 0 or not os.path.exists(archive):
        raise FetchError(f"pip could not download the sdist {project}=={version} into {archives}; "
                         "check that the package index is reachable")
    return archive


def _unpack(archive: str, trees: str, name: str) -> None:
    target = os.path.join(trees, name)
    if os.path.isdir(target):
        return
    staging = target + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(archive) as bundle:
        bundle.extractall(staging, filter="data")
    # An sdist contains one top folder NAME-VERSION, and the tree keeps its contents under that name.
    inner = os.path.join(staging, name)
    os.rename(inner if os.path.isdir(inner) else staging, target)
    shutil.rmtree(staging, ignore_errors=True)


def fetch_tree(cache: str) -> str:
    """Download, verify and unpack every sdist of :data:`SDISTS` under ``cache``, and return the tree folder.

    Raises:
        FetchError: a download failed or an archive's SHA-256 differs from the pinned one.
    """
    archives = os.path.join(cache, "archives")
    trees = os.path.join(cache, "trees")
    os.makedirs(archives, exist_ok=True)
    os.makedirs(trees, exist_ok=True)
    for project, version, expected in SDISTS:
        archive = _download(archives, project, version)
        actual = _sha256(archive)
        if actual != expected:
            raise FetchError(f"{archive} has SHA-256 {actual}, expected {expected}; delete it and run again")
        _unpack(archive, trees, f"{project}-{version}")
    return trees


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=DEFAULT_CACHE,
                        help=f"folder for the archives and the unpacked trees (default {DEFAULT_CACHE})")
    args = parser.parse_args()
    try:
        print(fetch_tree(os.path.realpath(args.cache)))
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
