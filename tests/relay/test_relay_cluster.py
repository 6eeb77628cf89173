"""A three-node JetStream cluster on loopback: a stream with three replicas loses no event when a node dies."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import nats
import pytest
from team_support import (
    NatsServer,
    RunningRelay,
    make_cluster,
    make_machines,
    new_token,
    require_nats_binary,
    stream_messages,
    unique_settings,
    wait_for_replicated_streams,
    wait_settled,
    wait_until,
)

from mcp_server.events import make_event

pytestmark = pytest.mark.anyio

BURST = 1500
"""Events written on machine A during the test, in batches, while one node is stopped."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[list[NatsServer]]:
    require_nats_binary()
    nodes = make_cluster(tmp_path / "cluster")
    for node in nodes:
        node.start()
    try:
        for node in nodes:
            await node.wait_ready()
        await wait_for_replicated_streams([node.url for node in nodes], replicas=3)
        yield nodes
    finally:
        for node in nodes:
            node.stop()


async def _stream_leader(urls: list[str], stream: str) -> str:
    connection = await nats.connect(servers=urls)
    try:
        info = await connection.jetstream(timeout=5).stream_info(stream)
        assert info.cluster is not None and info.cluster.leader, f"stream {stream} has no leader"
        return info.cluster.leader
    finally:
        await connection.close()


async def test_node_loss_during_burst(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: list[NatsServer]
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    urls = [node.url for node in cluster]
    token = new_token()
    a, b = make_machines(
        tmp_path,
        unique_settings(tuple(urls), "machine-a", token=token, replicas=3),
        unique_settings(tuple(reversed(urls)), "machine-b", token=token, replicas=3),
    )
    written: list[str] = []

    def write_batch() -> None:
        events = [make_event("note.added", {"n": len(written) + i}, source="test") for i in range(100)]
        a.runtime.log.append(events)
        written.extend(event["id"] for event in events)

    try:
        async with anyio.create_task_group() as group:
            relay_a = await RunningRelay(a, group).start()
            relay_b = await RunningRelay(b, group).start()
            for _ in range(5):
                await anyio.to_thread.run_sync(write_batch)
            await wait_until(lambda: b.count("note.added") >= 100, 30, "B stores the first notes")

            leader = await _stream_leader(urls, a.settings.stream)
            stopped = next(node for node in cluster if node.name == leader)
            stopped.kill()
            while len(written) < BURST:
                await anyio.to_thread.run_sync(write_batch)

            survivors = [node.url for node in cluster if node is not stopped]
            await wait_settled(survivors, [(a, relay_a), (b, relay_b)], timeout=45)
            group.cancel_scope.cancel()

        stream = await stream_messages(survivors[0], a.settings)
        stored_on_b = b.ids("note.added")
    finally:
        a.runtime.close()
        b.runtime.close()

    assert len(written) == BURST
    assert sorted(stored_on_b) == sorted(written)
    assert Counter(headers["Nats-Msg-Id"] for _, headers, _ in stream) == Counter(written)
    assert await _stream_leader(survivors, a.settings.stream) != leader
