"""Cost of reading events through the schema layer, against reading the log directly.

Three reads of one page (50 events) from a log of ``--events`` ``widget.made``
events stored at payload version 1, with a version-2 model and upcaster
registered:

* baseline: ``SQLiteEventLog.query`` (no upcasting);
* ``Runtime.query_events``: the same page, upcast to version 2;
* ``Runtime.query_events`` with ``where={"color": "red"}``: a payload field
  without an index, matched after upcasting, which reads every event of the type.

Run: ``.venv/bin/python bench/bench_schema.py --events 20000``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcp_server.events import make_event  # noqa: E402
from mcp_server.runtime import Runtime  # noqa: E402
from mcp_server.schema.registry import REGISTRY  # noqa: E402
from mcp_server.store.base import EventFilter  # noqa: E402


class WidgetMade(BaseModel):
    """Version 2: ``colour`` renamed to ``color``."""

    SCHEMA_VERSION: ClassVar[int] = 2

    color: str


def _upcast(payload: dict[str, Any]) -> dict[str, Any]:
    return {"color": payload.pop("colour")}


def _median_ms(function: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="widget.made events in the log (default 20000)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per read (default 20)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        runtime = Runtime(folder, environ={})
        colours = ("red", "blue", "green", "black")
        batch = []
        for number in range(args.events):
            event = make_event("widget.made", {"colour": colours[number % 4]}, source="bench")
            event["metadata"]["schema_version"] = 1
            batch.append(event)
        runtime.log.append(batch)
        REGISTRY.register("widget.made", WidgetMade, owner="bench", upcasters={1: _upcast})
        query = EventFilter(types=("widget.made",))

        raw = _median_ms(lambda: runtime.log.query(query, limit=50), args.repeat)
        upcast = _median_ms(lambda: runtime.query_events(query, limit=50), args.repeat)
        where = _median_ms(lambda: runtime.query_events(query, limit=50, where={"color": "red"}), max(3, args.repeat // 4))
        runtime.close()

    print(f"events in the log: {args.events}, page of 50, medians of {args.repeat} runs")
    print(f"log.query (baseline)          {raw:8.2f} ms")
    print(f"query_events, upcast          {upcast:8.2f} ms  ({upcast / raw:.2f}x baseline)")
    print(f"query_events, where color=red {where:8.2f} ms  ({where / raw:.1f}x baseline)")


if __name__ == "__main__":
    main()
