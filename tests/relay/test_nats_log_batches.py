"""What the JetStream event log guarantees beyond the shared contract: partial batches, shared streams, checkpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import nats
import pytest
from nats.js.api import DiscardPolicy, StreamConfig
from team_support import SYSTEM_NATS, new_token, require_system_nats

from mcp_server.errors import ConfigurationError, StoreError
from mcp_server.events import make_event
from mcp_server.store.nats import NatsEventLog
from mcp_server.team import TeamSettings


@pytest.fixture
def settings() -> Iterator[TeamSettings]:
    require_system_nats()
    token = new_token()
    created = TeamSettings(servers=(SYSTEM_NATS,), project="shop", machine_id="log-test",
                           stream=f"EVENTSYNC-TEST-{token}", subject_prefix=f"test{token}")
    yield created
    asyncio.run(_delete(created))


async def _delete(settings: TeamSettings) -> None:
    """Delete the test's stream and the checkpoint buckets of both projects the tests use."""
    connection = await nats.connect(SYSTEM_NATS)
    js = connection.jetstream(timeout=5)
    buckets = [settings.with_changes(project=project).checkpoint_bucket for project in ("shop", "billing")]
    try:
        await js.delete_stream(settings.stream)
    except nats.js.errors.NotFoundError:
        pass
    for bucket in buckets:
        try:
            await js.delete_key_value(bucket)
        except nats.js.errors.NotFoundError:
            pass
    await connection.close()


async def _change_stream(settings: TeamSettings, **changes: object) -> None:
    connection = await nats.connect(SYSTEM_NATS)
    js = connection.jetstream(timeout=5)
    config = StreamConfig(name=settings.stream, subjects=[f"{settings.subject_prefix}.>"], **changes)
    try:
        await js.update_stream(config)
    except nats.js.errors.NotFoundError:
        await js.add_stream(config)
    await connection.close()


def _notes(count: int) -> list[dict]:
    return [make_event("note.added", {"text": f"note {index}"}, source="test") for index in range(count)]


def test_failed_batch_completes_on_retry(settings: TeamSettings) -> None:
    asyncio.run(_change_stream(settings, max_msgs=3, discard=DiscardPolicy.NEW))
    log = NatsEventLog(settings)
    batch = _notes(5)

    with pytest.raises(StoreError, match="stored 3 of 5 events .* append the same batch again"):
        log.append(batch)
    stored_before_retry = [event.id for event in log.read_after(0)]
    asyncio.run(_change_stream(settings, max_msgs=-1))
    retried = log.append(batch)
    log.close()

    assert stored_before_retry == [event["id"] for event in batch[:3]]
    assert [event.id for event in retried] == [event["id"] for event in batch[3:]]
    assert [event.position for event in retried] == [4, 5]


def test_failed_batch_keeps_checkpoint(settings: TeamSettings) -> None:
    asyncio.run(_change_stream(settings, max_msgs=1, discard=DiscardPolicy.NEW))
    log = NatsEventLog(settings)

    with pytest.raises(StoreError), log.transaction() as transaction:
        log.append_in(transaction, _notes(2))
        log.set_checkpoint(transaction, "consumer", 2)
    checkpoint = log.checkpoint("consumer")
    log.close()

    assert checkpoint == 0


def test_projects_share_one_stream(settings: TeamSettings) -> None:
    shop = NatsEventLog(settings)
    billing = NatsEventLog(settings.with_changes(project="billing"))

    shop.append(_notes(2))
    billing.append(_notes(1))
    shop.append(_notes(1))
    positions = [event.position for event in shop.read_after(0)]
    billing_positions = [event.position for event in billing.read_after(0)]
    shop.close()
    billing.close()

    assert positions == [1, 2, 4]
    assert billing_positions == [3]


def test_append_skips_ids_stored_by_another_writer(settings: TeamSettings) -> None:
    first = NatsEventLog(settings)
    second = NatsEventLog(settings)
    batch = _notes(3)

    first.append(batch[:2])
    stored = second.append(batch)
    head = first.head()
    first.close()
    second.close()

    assert [event.id for event in stored] == [batch[2]["id"]]
    assert head == 3


def test_checkpoint_names_any_consumer(settings: TeamSettings) -> None:
    log = NatsEventLog(settings)

    with log.transaction() as transaction:
        log.set_checkpoint(transaction, "relay.outbox.EVENTSYNC", 7)
        log.set_checkpoint(transaction, "module:pm graph", 3)
        pending = log.checkpoint("module:pm graph", transaction)
    saved = log.checkpoints()
    log.close()

    assert pending == 3
    assert saved == {"module:pm graph": 3, "relay.outbox.EVENTSYNC": 7}


def test_stream_without_project_subjects_rejected(settings: TeamSettings) -> None:
    asyncio.run(_change_stream(settings))

    with pytest.raises(ConfigurationError, match=r"has subjects \['test\w+\.>'\], which do not cover 'other\.shop\.>'"):
        NatsEventLog(settings.with_changes(subject_prefix="other"))


def test_unreachable_server_raises_store_error() -> None:
    settings = TeamSettings(servers=("nats://127.0.0.1:1",), project="shop", machine_id="log-test")

    with pytest.raises(StoreError, match="could not open JetStream event log 'nats:EVENTSYNC/shop'"):
        NatsEventLog(settings)
