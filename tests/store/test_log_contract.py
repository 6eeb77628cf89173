"""The contract every event-log backend keeps, run against each backend.

Add a backend to ``BACKENDS`` and it must pass every test here unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mcp_server.errors import ClosedError, InvalidEventError
from mcp_server.events import make_event
from mcp_server.store.base import EventFilter, EventLog
from mcp_server.store.memory import MemoryEventLog
from mcp_server.store.sqlite import SQLiteEventLog
from mcp_server.team.settings import jetstream_available

from conftest import require_service


def _jetstream_log(folder: Path) -> EventLog:
    """A JetStream log on a stream of its own, deleted when the log closes."""
    from mcp_server.store.nats import NatsEventLog

    require_service("NATS JetStream on 127.0.0.1:4222", jetstream_available)
    return NatsEventLog.temporary()


BACKENDS: dict[str, Callable[[Path], EventLog]] = {
    "memory": lambda folder: MemoryEventLog(),
    "sqlite": lambda folder: SQLiteEventLog(str(folder / "events.db")),
    "nats": _jetstream_log,
}


@pytest.fixture(params=sorted(BACKENDS))
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    opened = BACKENDS[request.param](tmp_path)
    yield opened
    opened.close()


def _event(event_type: str = "file.saved", **payload: object) -> dict:
    return make_event(event_type, dict(payload), source="test", session_id=str(payload.get("session", "s1")))


def test_positions_increase(log: EventLog) -> None:
    stored = log.append([_event(path=f"f{i}") for i in range(5)])

    assert [event.position for event in stored] == [1, 2, 3, 4, 5]
    assert log.head() == 5


def test_append_idempotent_on_id(log: EventLog) -> None:
    event = _event(path="a")

    first = log.append([event])
    second = log.append([event])

    assert len(first) == 1
    assert second == []
    assert log.head() == 1


def test_batch_is_atomic(log: EventLog) -> None:
    good = _event(path="a")
    bad = {**_event(path="b"), "type": "Not A Type"}

    with pytest.raises(InvalidEventError, match="invalid event type 'Not A Type'"):
        log.append([good, bad])

    assert log.head() == 0


def test_read_after_position(log: EventLog) -> None:
    log.append([_event(path=str(i)) for i in range(10)])

    after = log.read_after(7)

    assert [event.position for event in after] == [8, 9, 10]
    assert after[0].payload == {"path": "7", }


def test_read_after_filters_types(log: EventLog) -> None:
    log.append([_event("file.saved", path="a"), _event("task.created"), _event("task.done.late")])

    assert [e.type for e in log.read_after(0, types=("task.*",))] == ["task.created"]
    assert [e.type for e in log.read_after(0, types=("task.>",))] == ["task.created", "task.done.late"]
    assert [e.type for e in log.read_after(0, types=(">",))] == ["file.saved", "task.created", "task.done.late"]


def test_query_filters(log: EventLog) -> None:
    a = make_event("file.saved", {"path": "a"}, source="hook", session_id="s1")
    b = make_event("file.saved", {"path": "b"}, source="mcp", session_id="s2")
    c = make_event("note.added", {"text": "x"}, source="mcp", session_id="s2")
    log.append([a, b, c])

    assert log.query(EventFilter(types=("file.saved",))).total == 2
    assert [e.id for e in log.query(EventFilter(source="mcp")).events] == [c["id"], b["id"]]
    assert [e.id for e in log.query(EventFilter(session_id="s1")).events] == [a["id"]]
    assert [e.id for e in log.query(EventFilter(correlation_id=b["id"])).events] == [b["id"]]
    assert [e.position for e in log.query(EventFilter(after=1, before=3)).events] == [2]
    assert log.query(EventFilter(since=b["timestamp"])).total >= 2
    assert log.query(EventFilter(until="1999-01-01T00:00:00.000000Z")).total == 0
    assert [e.id for e in log.query(EventFilter(payload_equals=(("path", "b"),))).events] == [b["id"]]
    assert log.query(EventFilter(types=("nothing.here",))).total == 0


def test_query_pages_with_cursor(log: EventLog) -> None:
    log.append([_event(path=str(i)) for i in range(7)])

    first = log.query(EventFilter(), limit=3)
    second = log.query(EventFilter(), limit=3, cursor=first.next_cursor)
    third = log.query(EventFilter(), limit=3, cursor=second.next_cursor)

    assert [e.position for e in first.events] == [7, 6, 5]
    assert [e.position for e in second.events] == [4, 3, 2]
    assert [e.position for e in third.events] == [1]
    assert third.next_cursor is None
    assert first.total == 7


def test_query_ascending(log: EventLog) -> None:
    log.append([_event(path=str(i)) for i in range(4)])

    page = log.query(EventFilter(), limit=2, descending=False)

    assert [e.position for e in page.events] == [1, 2]
    assert [e.position for e in log.query(EventFilter(), limit=2, cursor=page.next_cursor, descending=False).events] == [3, 4]


def test_query_rejects_bad_pattern(log: EventLog) -> None:
    with pytest.raises(InvalidEventError, match="invalid type pattern 'file.>.x'"):
        log.query(EventFilter(types=("file.>.x",)))


def test_payload_too_large_rejected(log: EventLog) -> None:
    with pytest.raises(InvalidEventError, match="over the 262144-byte limit"):
        log.append([_event(blob="x" * 300_000)])


@pytest.mark.parametrize("key", ["id", "type", "timestamp", "source"])
@pytest.mark.parametrize("value", [None, "", 7])
def test_text_field_rejected(log: EventLog, key: str, value: object) -> None:
    bad = {**_event(path="b"), key: value}
    if value is None:
        del bad[key]

    with pytest.raises(InvalidEventError, match=f"event field '{key}' must be a non-empty string, got {value!r}"):
        log.append([_event(path="a"), bad])

    assert log.head() == 0


@pytest.mark.parametrize("key", ["payload", "metadata"])
def test_non_object_payload_rejected(log: EventLog, key: str) -> None:
    bad = {**_event(path="a"), key: ["not", "an", "object"]}

    with pytest.raises(InvalidEventError, match=f"{key} must be a JSON object, got list"):
        log.append([bad])

    assert log.head() == 0


def test_unserialisable_payload_rejected(log: EventLog) -> None:
    with pytest.raises(InvalidEventError, match="(?i)is not JSON-serialisable: object of type set"):
        log.append([_event(tags={"a", "b"})])

    assert log.head() == 0


def test_circular_payload_rejected(log: EventLog) -> None:
    cycle: dict[str, object] = {}
    cycle["self"] = cycle

    with pytest.raises(InvalidEventError, match="is not JSON-serialisable"):
        log.append([_event(cycle=cycle)])

    assert log.head() == 0


def test_deeply_nested_payload_rejected(log: EventLog) -> None:
    nested: list[object] = []
    for _ in range(5000):
        nested = [nested]

    with pytest.raises(InvalidEventError, match="is not JSON-serialisable"):
        log.append([_event(nested=nested)])

    assert log.head() == 0


def test_stored_fields_match_event(log: EventLog) -> None:
    event = _event(path="a")

    stored = log.append([event, _event(path="b")])[0]

    assert stored.id == event["id"]
    assert stored.type == event["type"]
    assert stored.timestamp == event["timestamp"]
    assert stored.source == event["source"]
    assert stored.payload == {"path": "a"}
    # A relay backend adds its own keys, such as ``origin``, to the metadata.
    assert event["metadata"].items() <= stored.metadata.items()
    assert log.get(event["id"]) == stored


def test_query_rejects_unindexed_field(log: EventLog) -> None:
    with pytest.raises(InvalidEventError, match="cannot filter on payload field 'colour': it has no index"):
        log.query(EventFilter(payload_equals=(("colour", "red"),)))


def test_query_text(log: EventLog) -> None:
    log.append([_event("note.added", text="deploy the checkout service"), _event("note.added", text="lunch")])

    assert log.query(EventFilter(text="checkout")).total == 1
    assert log.query(EventFilter(text="CHECKOUT")).total == 1
    assert log.query(EventFilter(text="deploy service")).total == 1
    assert log.query(EventFilter(text="nothing")).total == 0


def test_checkpoints_commit_atomically(log: EventLog) -> None:
    log.append([_event(path="a"), _event(path="b")])
    with log.transaction() as transaction:
        log.set_checkpoint(transaction, "consumer", 1)

    with pytest.raises(RuntimeError):
        with log.transaction() as transaction:
            log.append_in(transaction, [_event(path="c")])
            log.set_checkpoint(transaction, "consumer", 2)
            raise RuntimeError("crash before commit")

    assert log.checkpoint("consumer") == 1
    assert log.checkpoints() == {"consumer": 1}
    assert log.head() == 2


def test_get_by_id(log: EventLog) -> None:
    event = _event(path="a")
    log.append([event])

    assert log.get(event["id"]).payload == {"path": "a"}
    assert log.get("missing") is None


def test_iterate_reads_everything(log: EventLog) -> None:
    log.append([_event(path=str(i)) for i in range(12)])

    assert [event.position for event in log.iterate(batch=5)] == list(range(1, 13))


def test_closed_log_rejects_use(log: EventLog) -> None:
    log.close()

    with pytest.raises(ClosedError, match="closed"):
        log.head()


def test_duplicate_ids_within_batch(log: EventLog) -> None:
    first = _event(path="a")
    stored = log.append([first, _event(path="b"), first])

    assert [event.payload["path"] for event in stored] == ["a", "b"]
    assert [event.position for event in stored] == [1, 2]
    assert log.head() == 2


def test_exact_totals_by_type(log: EventLog) -> None:
    log.append([_event("file.saved", path=str(i)) for i in range(30)] + [_event("note.added")])

    assert log.query(EventFilter(types=("file.*",)), limit=5).total == 30
    assert log.query(EventFilter(), limit=5).total == 31
    assert log.query(EventFilter(types=("file.*",)), limit=5).total_capped is False


def test_text_whole_words_unless_starred(log: EventLog) -> None:
    log.append([_event("note.added", text="deploy the checkout service")])

    assert log.query(EventFilter(text="check")).total == 0
    assert log.query(EventFilter(text="check*")).total == 1
    assert log.query(EventFilter(text="deploy check*")).total == 1
    assert log.query(EventFilter(text="deploy* lunch")).total == 0


def test_text_word_split_by_punctuation(log: EventLog) -> None:
    log.append([_event("note.added", path="src/cart_total.py"), _event("note.added", path="src/total_cart.py")])

    assert [e.payload["path"] for e in log.query(EventFilter(text="cart_total")).events] == ["src/cart_total.py"]
    assert log.query(EventFilter(text="cart")).total == 2
    assert log.query(EventFilter(text="cart_tot*")).total == 1


def test_text_without_words_matches_every_event(log: EventLog) -> None:
    log.append([_event(path="a"), _event(path="b")])

    assert log.query(EventFilter(text="*")).total == 2
    assert log.query(EventFilter(text='"" !!')).total == 2


def test_text_with_type_is_exact(log: EventLog) -> None:
    log.append([
        _event("task.done", text="ship checkout"),
        _event("task.done.late", text="ship checkout"),
        _event("note.added", text="ship checkout"),
        _event("task.done", text="ship refund"),
    ])

    page = log.query(EventFilter(types=("task.done",), text="checkout"))

    assert [e.type for e in page.events] == ["task.done"]
    assert page.total == 1
    assert [e.type for e in log.query(EventFilter(types=("task.>",), text="checkout")).events] == [
        "task.done.late", "task.done"]
    assert log.query(EventFilter(types=("task.>",), text="checkout")).total == 2
    assert log.query(EventFilter(types=("note.added",), text="ship")).total == 1
    assert log.query(EventFilter(types=("task.done",), text="ship")).total == 2
    assert log.query(EventFilter(types=("nothing.here",), text="checkout")).total == 0


def test_text_with_correlation_id(log: EventLog) -> None:
    checkout = _event(text="checkout", path="a")
    refund = _event(text="refund", path="a")
    log.append([checkout, refund])

    assert [e.id for e in log.query(EventFilter(correlation_id=checkout["id"], text="checkout")).events] == [
        checkout["id"]]
    assert log.query(EventFilter(correlation_id=refund["id"], text="checkout")).total == 0
    assert [e.id for e in log.query(EventFilter(payload_equals=(("path", "a"),), text="refund")).events] == [
        refund["id"]]


def _all_pages(log: EventLog, query: EventFilter, *, descending: bool) -> tuple[list[int], set[int]]:
    """Return the positions of every page of two, and the totals the pages reported."""
    positions: list[int] = []
    totals: set[int] = set()
    cursor = None
    while True:
        page = log.query(query, limit=2, cursor=cursor, descending=descending)
        positions.extend(event.position for event in page.events)
        totals.add(page.total)
        if page.next_cursor is None:
            return positions, totals
        cursor = page.next_cursor


def test_text_pages_with_cursor(log: EventLog) -> None:
    log.append([_event(text="checkout" if i % 2 else "refund", n=i) for i in range(10)])

    assert _all_pages(log, EventFilter(text="checkout"), descending=True) == ([10, 8, 6, 4, 2], {5})
    assert _all_pages(log, EventFilter(text="checkout"), descending=False) == ([2, 4, 6, 8, 10], {5})
    assert _all_pages(log, EventFilter(text="checkout", after=3, before=9), descending=True) == ([8, 6, 4], {3})


def _at_minute(minute: int, event_type: str = "file.saved", **payload: object) -> dict:
    event = _event(event_type, **payload)
    event["timestamp"] = _minute(minute)
    return event


def _minute(minute: int) -> str:
    return f"2026-11-01T{minute // 60:02d}:{minute % 60:02d}:00.000000Z"


# Positions 1 to 10; the events at positions 4, 6, 8 and 10 arrive after later ones, as inbox and relay events do.
ARRIVAL_MINUTES = [10, 20, 50, 30, 60, 40, 70, 20, 80, 10]

TIME_BOUNDS = [(None, 30), (40, None), (30, 50), (None, 5), (90, None), (20, 20), (10, 80), (None, None)]


def _check_time_bounds(log: EventLog, **conditions: object) -> None:
    stored = log.read_after(0)
    for since, until in TIME_BOUNDS:
        query = EventFilter(
            since=None if since is None else _minute(since), until=None if until is None else _minute(until),
            **conditions,  # type: ignore[arg-type]
        )
        expected = [event.position for event in stored if query.matches(event)]

        assert _all_pages(log, query, descending=False) == (expected, {len(expected)}), (since, until)
        assert _all_pages(log, query, descending=True) == (expected[::-1], {len(expected)}), (since, until)


def test_time_bounds_keep_position_order(log: EventLog) -> None:
    log.append([_at_minute(minute, n=index) for index, minute in enumerate(ARRIVAL_MINUTES)])

    _check_time_bounds(log)
    assert [event.position for event in log.query(EventFilter(until=_minute(30)), descending=False).events] == [
        1, 2, 4, 8, 10]


def test_time_bounds_after_later_appends(log: EventLog) -> None:
    log.append([_at_minute(minute, n=index) for index, minute in enumerate(ARRIVAL_MINUTES[:5])])
    log.query(EventFilter(since=_minute(30)))
    log.append([_at_minute(minute, n=index) for index, minute in enumerate(ARRIVAL_MINUTES[5:])])

    _check_time_bounds(log)


def test_time_bounds_with_other_filters(log: EventLog) -> None:
    log.append([
        _at_minute(minute, "note.added" if index % 4 == 1 else "file.saved", text="checkout" if index % 3 else "refund",
                   session=f"s{index % 2}")
        for index, minute in enumerate(ARRIVAL_MINUTES)
    ])

    _check_time_bounds(log, text="checkout")
    _check_time_bounds(log, session_id="s1")
    _check_time_bounds(log, text="checkout", session_id="s1")
    _check_time_bounds(log, text="checkout", session_id="no-such-session")
    _check_time_bounds(log, types=("note.added",), session_id="s1")
    _check_time_bounds(log, types=("note.added",), session_id="s1", text="checkout")
    _check_time_bounds(log, types=("file.saved",), after=2, before=9)
