"""Test-only modules loaded into a real server process through ``EVENTSYNC_MODULES``."""

from __future__ import annotations

import logging
import subprocess
import warnings
from typing import Any

from mcp_server.store.base import StoredEvent


def noisy(bus: Any, runtime: Any) -> None:
    """Register a handler that writes to stdout every way a library might."""

    def shout(event: StoredEvent) -> None:
        print("handler says hi")
        logging.getLogger("third.party").warning("careful")
        warnings.warn("deprecated thing", stacklevel=1)
        subprocess.run(["git", "--version"], check=False)

    bus.subscribe("note.added", shout, name="noisy")


def exploding(bus: Any, runtime: Any) -> None:
    """Register a handler on note.added that always raises."""

    def explode(event: StoredEvent) -> None:
        raise RuntimeError("boom")

    bus.subscribe("note.added", explode, name="explode")


def looping(bus: Any, runtime: Any) -> None:
    """Register a self-emitting handler and a three-event cycle."""
    bus.subscribe("loop.self", lambda e: bus.publish_nowait("loop.self", {}), name="loop")
    following = {"cyc.a": "cyc.b", "cyc.b": "cyc.c", "cyc.c": "cyc.a"}
    bus.subscribe("cyc.*", lambda e: bus.publish_nowait(following[e.type], {}), name="cycle")
    bus.subscribe("quux", lambda e: bus.publish_nowait("quux.seen", {}), name="quux")


def failing_index(bus: Any, runtime: Any) -> None:
    """Make the full index raise an error that is not an eventsync error, after leaving a marker file."""
    import os

    def fail(*arguments: Any, **options: Any) -> None:
        with open(os.path.join(runtime.root, "index-attempted"), "w", encoding="utf-8"):
            pass
        raise RuntimeError("index exploded")

    runtime.index_project = fail
