"""Time filters: since and until are parsed as ISO 8601 and compared in the log's own form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server.errors import InvalidEventError
from mcp_server.events import make_event
from mcp_server.store.base import EventFilter
from mcp_server.store.sqlite import SQLiteEventLog

STORED = "2026-12-04T23:24:28.833295Z"


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SQLiteEventLog]:
    opened = SQLiteEventLog(str(tmp_path / "events.db"))
    event = make_event("note.added", {"text": "timed"}, source="test")
    event["timestamp"] = STORED
    opened.append([event])
    yield opened
    opened.close()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-12-04T23:30:00+05:00", "2026-12-04T18:30:00.000000Z"),
        ("2026-12-04T23:24:28Z", "2026-12-04T23:24:28.000000Z"),
        ("2026-12-04T23:24:28", "2026-12-04T23:24:28.000000Z"),
        ("2026-12-04T23:24:28.5Z", "2026-12-04T23:24:28.500000Z"),
        ("2026-12-04", "2026-12-04T00:00:00.000000Z"),
        ("2026-12-04t23:24:28z", "2026-12-04T23:24:28.000000Z"),
        ("2026-12-04T23:24:28.5z", "2026-12-04T23:24:28.500000Z"),
        (STORED, STORED),
    ],
)
def test_time_bounds_normalised(given: str, expected: str) -> None:
    query = EventFilter(since=given, until=given)

    assert query.since == expected
    assert query.until == expected


def test_digits_past_microseconds_round_outward() -> None:
    query = EventFilter(since="2026-12-04T23:24:28.8332951Z", until="2026-12-04T23:24:28.8332959Z")

    assert query.since == "2026-12-04T23:24:28.833296Z"
    assert query.until == "2026-12-04T23:24:28.833295Z"


def test_last_microsecond_rounds_to_itself() -> None:
    query = EventFilter(since="9999-12-31T23:59:59.9999999Z", until="9999-12-31T23:59:59.9999999Z")

    assert query.since == "9999-12-31T23:59:59.999999Z"
    assert query.until == "9999-12-31T23:59:59.999999Z"


def test_hour_24_rejected_with_fix() -> None:
    with pytest.raises(InvalidEventError) as raised:
        EventFilter(until="2026-12-04T24:00:00Z")

    assert "invalid until '2026-12-04T24:00:00Z'" in str(raised.value)
    assert "00:00:00 of the next day" in str(raised.value)


@pytest.mark.parametrize("value", ["yesterday", "2026-13-45T99:00:00Z", "", "0001-01-01T00:00:00+05:00"])
def test_unparseable_bound_rejected(value: str) -> None:
    with pytest.raises(InvalidEventError) as raised:
        EventFilter(since=value)

    assert f"invalid since {value!r}" in str(raised.value)
    assert "ISO 8601" in str(raised.value)


@pytest.mark.parametrize(
    ("conditions", "count"),
    [
        ({"since": "2026-12-04T23:24:28Z"}, 1),  # the same second, before the fraction
        ({"until": "2026-12-04T23:24:28Z"}, 0),
        ({"since": "2026-12-05T04:24:28+05:00"}, 1),  # 23:24:28 UTC
        ({"since": "2026-12-05T04:24:29+05:00"}, 0),
        ({"until": "2026-12-05T04:24:29+05:00"}, 1),
        ({"since": "2026-12-04T23:24:28.8332951Z"}, 0),
        ({"since": STORED, "until": STORED}, 1),
    ],
)
def test_query_compares_times(log: SQLiteEventLog, conditions: dict[str, str], count: int) -> None:
    query = EventFilter(**conditions)  # type: ignore[arg-type]

    assert log.query(query).total == count
    assert len(log.query(query).events) == count
