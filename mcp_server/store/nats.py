"""The event log on NATS JetStream: one project's events in the team stream, checkpoints in a key-value bucket.

Events are the same messages the relay publishes (``<prefix>.<project>.<type>``,
event id as ``Nats-Msg-Id``, body from :mod:`mcp_server.team.wire`), so this
log reads what every machine's relay wrote. A position is the message's
stream sequence; positions strictly increase, and skip the sequences of other
projects sharing the stream.

Guarantees, and where they differ from :mod:`mcp_server.store.sqlite`:

* **Idempotent append.** Before publishing, the log catches its read copy up
  with the stream and skips ids already there. The server drops a concurrent
  writer's copy inside the stream's duplicate window. A copy stored anyway
  (two writers racing after the window) is ignored by every reader.
* **Atomic batches, short of a crash.** nats-server 2.9 has no
  multi-message transaction (atomic batch publish arrived in 2.12). A batch
  with an invalid event is rejected before anything is sent, and a
  :meth:`NatsEventLog.transaction` block that raises sends nothing. Once
  publishing has started, a failure (lost connection, a stream limit) leaves
  part of the batch stored and raises :class:`StoreError`; appending the same
  batch again stores the rest without duplicates. Readers may see that part.
* **Checkpoints** are written to the bucket after the transaction's events
  are acknowledged, so a checkpoint never points past an event that is not
  stored. A crash between the two makes a consumer handle events again, which
  eventsync's consumers tolerate because their emitted events have derived ids.
* **Reads** come from an in-process copy of the project's events, caught up
  from the stream before each read (one stream-info request when nothing
  changed). Its memory grows with the project's events in the stream, which
  the stream's max age bounds.

The NATS client is asynchronous and this interface is not, so the log runs
the client on an event loop in a thread of its own.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import concurrent.futures
import logging
import re
import threading
import uuid
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    NoKeysError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from mcp_server import subjects
from mcp_server.errors import ClosedError, EventsyncError, InvalidEventError, StoreError
from mcp_server.store.base import (
    MAX_PAGE_SIZE,
    EventFilter,
    EventLog,
    QueryPage,
    StoredEvent,
    validate_event,
)
from mcp_server.team.publish import Ack, BatchResult, OutgoingMessage, publish_batch
from mcp_server.team.settings import TeamSettings, redact_url
from mcp_server.team.streams import ensure_stream
from mcp_server.team.wire import decode_event, encode_event

__all__ = ["REQUEST_TIMEOUT", "NatsEventLog"]

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0
"""Seconds one operation (a read catch-up, a batch publish, a checkpoint write) may take before it fails."""

API_TIMEOUT = 5.0
"""Seconds to wait for the reply to one JetStream API request or one batch of publishes."""

RECONNECT_ATTEMPTS = 3
"""Connection attempts per server, at the first connect and after a lost connection, before operations fail."""

RECONNECT_WAIT = 0.5
"""Seconds between connection attempts to one server."""

SCAN_BATCH = 1000
"""Messages fetched per request while catching the read copy up."""

SCAN_INACTIVE_THRESHOLD = 60.0
"""Seconds after which the server deletes a catch-up consumer this log failed to delete itself."""

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_T = TypeVar("_T")


@dataclass
class _PendingWrite:
    """The appends and checkpoints of one open transaction, written when its block ends without an exception."""

    events: list[dict[str, Any]] = field(default_factory=list)
    checkpoints: dict[str, int] = field(default_factory=dict)
    stored: list[StoredEvent] = field(default_factory=list)


class _LoopThread:
    """An asyncio event loop running in a daemon thread, for calls from synchronous code."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, _T], timeout: float) -> _T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=REQUEST_TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()


def _checkpoint_key(consumer: str) -> str:
    """Return the bucket key for ``consumer``; names that are not valid keys are stored base64-encoded after ``=``."""
    if _PLAIN_KEY.fullmatch(consumer):
        return consumer
    return "=" + base64.urlsafe_b64encode(consumer.encode("utf-8")).decode("ascii")


def _consumer_name(key: str) -> str:
    if key.startswith("="):
        return base64.urlsafe_b64decode(key[1:].encode("ascii")).decode("utf-8")
    return key


class NatsEventLog(EventLog):
    """One project's event log in a JetStream stream, safe to share between threads of one process."""

    def __init__(self, settings: TeamSettings, *, delete_on_close: bool = False) -> None:
        """Connect, create the stream and checkpoint bucket if missing, and read the project's events.

        Args:
            settings: the servers, stream, project key and machine id (the
                origin stamped on events this log appends).
            delete_on_close: delete the stream and the bucket in :meth:`close`;
                for logs made by :meth:`temporary`, never for a shared stream.

        Raises:
            StoreError: NATS is unreachable or rejected the stream or bucket.
            ConfigurationError: the stream exists without the project's subjects.
        """
        self.settings = settings
        self.path = f"nats:{settings.stream}/{settings.project}"
        self._delete_on_close = delete_on_close
        self._lock = threading.RLock()
        self._events: list[StoredEvent] = []
        self._positions: list[int] = []
        self._by_id: dict[str, StoredEvent] = {}
        self._scanned_through = 0
        self._closed = False
        self._client: Client | None = None
        self._loop = _LoopThread(f"eventsync-nats-{settings.stream}")
        try:
            self._call(self._connect(), "open")
        except BaseException:
            self._shutdown(delete=False)
            raise

    @classmethod
    def temporary(cls, servers: Sequence[str] = ("nats://127.0.0.1:4222",), *, project: str = "scratch") -> NatsEventLog:
        """Return a log on a new, uniquely named stream that :meth:`close` deletes (for tests and benchmarks)."""
        token = uuid.uuid4().hex[:12]
        settings = TeamSettings(
            servers=tuple(servers),
            project=project,
            machine_id=f"log-{token}",
            stream=f"EVENTSYNC-TMP-{token}",
            subject_prefix=f"tmp{token}",
        )
        return cls(settings, delete_on_close=True)

    # -- connection ----------------------------------------------------------------------

    async def _connect(self) -> None:
        self._client = await nats.connect(
            **self.settings.connect_options(),
            connect_timeout=API_TIMEOUT,
            max_reconnect_attempts=RECONNECT_ATTEMPTS,
            reconnect_time_wait=RECONNECT_WAIT,
        )
        self._js = self._client.jetstream(timeout=API_TIMEOUT)
        await ensure_stream(self._js, self.settings)
        self._bucket = await self._open_bucket()

    async def _open_bucket(self) -> KeyValue:
        try:
            return await self._js.key_value(self.settings.checkpoint_bucket)
        except BucketNotFoundError:
            return await self._js.create_key_value(
                bucket=self.settings.checkpoint_bucket,
                description=f"eventsync checkpoints of project {self.settings.project}",
                history=1,
                storage=StorageType.FILE,
                replicas=self.settings.replicas,
            )

    def _call(self, coroutine: Coroutine[Any, Any, _T], action: str) -> _T:
        """Run ``coroutine`` on the client's loop, translating NATS failures into :class:`StoreError`."""
        try:
            return self._loop.call(coroutine, REQUEST_TIMEOUT)
        except EventsyncError:
            raise
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            detail = str(exc) or type(exc).__name__
            raise StoreError(
                f"could not {action} JetStream event log {self.path!r} on "
                f"{','.join(redact_url(server) for server in self.settings.servers)}: "
                f"{detail}; check that NATS is running with JetStream enabled and the credentials are right"
            ) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"JetStream event log {self.path!r} is closed; open a new NatsEventLog")

    def close(self) -> None:
        """Close the connection (deleting the stream and bucket if asked to); later use raises ClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._shutdown(delete=self._delete_on_close)

    def _shutdown(self, *, delete: bool) -> None:
        async def finish() -> None:
            if self._client is None:
                return
            if delete:
                await self._js.delete_stream(self.settings.stream)
                await self._js.delete_key_value(self.settings.checkpoint_bucket)
            await self._client.close()

        try:
            self._loop.call(finish(), REQUEST_TIMEOUT)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            # Contained on purpose: closing must not fail; the server drops the connection anyway.
            logger.warning("closing JetStream event log %s: %s", self.path, exc)
        finally:
            self._loop.stop()

    # -- the read copy -------------------------------------------------------------------

    def _refresh(self) -> None:
        """Add the project's messages stored since the last read to the read copy."""
        with self._lock:
            self._check_open()
            through, messages = self._call(self._scan(self._scanned_through), "read")
            last = self._positions[-1] if self._positions else 0
            for sequence, data, headers in messages:
                if sequence <= last:
                    continue
                try:
                    event = decode_event(data, headers)
                except InvalidEventError as exc:
                    # Contained on purpose: a foreign message must not make the log unreadable.
                    logger.warning("skipping message %d in stream %s: %s", sequence, self.settings.stream, exc)
                    continue
                if event["id"] not in self._by_id:
                    self._remember(sequence, event)
                last = sequence
            self._scanned_through = max(self._scanned_through, through)

    def _remember(self, position: int, event: dict[str, Any]) -> None:
        record = StoredEvent(
            position=position,
            id=str(event["id"]),
            type=str(event["type"]),
            timestamp=str(event["timestamp"]),
            source=str(event["source"]),
            payload=dict(event.get("payload") or {}),
            metadata=dict(event.get("metadata") or {}),
        )
        self._events.append(record)
        self._positions.append(position)
        self._by_id[record.id] = record

    async def _scan(self, after: int) -> tuple[int, list[tuple[int, bytes, dict[str, str] | None]]]:
        """Return the stream's last sequence and the project's messages after ``after``."""
        info = await self._js.stream_info(self.settings.stream)
        last = info.state.last_seq
        if last <= after:
            return after, []

        config = ConsumerConfig(
            filter_subject=self.settings.project_filter,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after + 1,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=SCAN_INACTIVE_THRESHOLD,
            mem_storage=True,
        )
        consumer = await self._js.add_consumer(self.settings.stream, config)
        received: list[tuple[int, bytes, dict[str, str] | None]] = []
        try:
            remaining = consumer.num_pending
            if remaining:
                subscription = await self._js.pull_subscribe_bind(consumer.name, stream=self.settings.stream)
                try:
                    while remaining > 0:
                        messages = await subscription.fetch(min(remaining, SCAN_BATCH), timeout=API_TIMEOUT)
                        received.extend((m.metadata.sequence.stream, m.data, m.headers) for m in messages)
                        remaining = messages[-1].metadata.num_pending
                finally:
                    await subscription.unsubscribe()
        finally:
            try:
                await self._js.delete_consumer(self.settings.stream, consumer.name)
            except NotFoundError:
                pass
        through = max(last, received[-1][0] if received else 0)
        return through, received

    # -- transactions and append ---------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[_PendingWrite]:
        """Collect the block's appends and checkpoints and write them when it ends; discard them if it raises.

        Raises:
            StoreError: publishing failed part-way; see the module docstring for what is then stored.
        """
        self._check_open()
        with self._lock:
            pending = _PendingWrite()
            yield pending
            self._commit(pending)

    def append(self, events: Iterable[dict[str, Any]]) -> list[StoredEvent]:
        """Append ``events`` as one batch and return those that were not already stored.

        Raises:
            InvalidEventError: an event is malformed; nothing is stored.
            StoreError: publishing failed part-way; appending the same batch again stores the rest.
        """
        batch = list(events)
        if not batch:
            return []
        with self.transaction() as pending:
            self.append_in(pending, batch)
        return pending.stored

    def append_in(self, transaction: _PendingWrite, events: Iterable[dict[str, Any]]) -> list[StoredEvent]:
        """Validate ``events`` and add them to the caller's transaction.

        Positions come from JetStream when the transaction commits, so the
        returned list is empty until then and afterwards contains the events
        that were not already stored.

        Raises:
            InvalidEventError: an event is malformed.
        """
        for event in events:
            validate_event(event)
            transaction.events.append(event)
        return transaction.stored

    def _commit(self, pending: _PendingWrite) -> None:
        if pending.events:
            self._refresh()
            fresh: list[dict[str, Any]] = []
            seen: set[str] = set()
            for event in pending.events:
                if event["id"] in self._by_id or event["id"] in seen:
                    continue
                seen.add(event["id"])
                fresh.append(event)
            if fresh:
                result = self._call(self._publish(fresh), "append to")
                self._refresh()
                if not result.complete:
                    raise StoreError(
                        f"JetStream stored {result.acknowledged} of {len(fresh)} events of a batch for {self.path!r}: "
                        f"{result.first_failure()}; append the same batch again to store the rest "
                        "(stored ids are skipped)"
                    )
                pending.stored.extend(
                    self._by_id[event["id"]]
                    for event, ack in zip(fresh, result.acks)
                    if isinstance(ack, Ack) and not ack.duplicate and event["id"] in self._by_id
                )
        for consumer, position in pending.checkpoints.items():
            self._call(self._bucket.put(_checkpoint_key(consumer), str(position).encode("ascii")), "write checkpoints of")

    async def _publish(self, events: list[dict[str, Any]]) -> BatchResult:
        """Publish ``events`` in order, pipelined, and return JetStream's acknowledgements."""
        assert self._client is not None
        outgoing = []
        for event in events:
            body, headers = encode_event(event, self.settings.machine_id)
            outgoing.append(OutgoingMessage(self.settings.subject(str(event["type"])), body, headers))
        return await publish_batch(self._client, outgoing, timeout=API_TIMEOUT)

    # -- reads ---------------------------------------------------------------------------

    def head(self) -> int:
        """Return the position of the project's newest event, or 0 when it has none."""
        self._refresh()
        with self._lock:
            return self._positions[-1] if self._positions else 0

    def get(self, event_id: str) -> StoredEvent | None:
        """Return the event with ``event_id``, or None."""
        self._refresh()
        with self._lock:
            return self._by_id.get(event_id)

    def read_after(self, position: int, *, limit: int = MAX_PAGE_SIZE, types: Sequence[str] = ()) -> list[StoredEvent]:
        """Return up to ``limit`` events after ``position`` in log order, optionally of matching types."""
        for pattern in types:
            subjects.validate_pattern(pattern)
        self._refresh()
        with self._lock:
            following = self._events[bisect.bisect_right(self._positions, position) :]
        if types:
            following = [event for event in following if any(subjects.matches(p, event.type) for p in types)]
        return following[:limit]

    def query(
        self, query: EventFilter, *, limit: int = 50, cursor: int | None = None, descending: bool = True
    ) -> QueryPage:
        """Return one page of events matching ``query``; see :meth:`EventLog.query`."""
        query.validate()
        limit = max(1, min(int(limit), MAX_PAGE_SIZE))
        self._refresh()
        with self._lock:
            matching = [event for event in self._events if query.matches(event)]
        ordered = list(reversed(matching)) if descending else matching
        if cursor is not None:
            ordered = [e for e in ordered if (e.position < cursor if descending else e.position > cursor)]
        page = ordered[:limit]
        next_cursor = page[-1].position if len(ordered) > limit else None
        return QueryPage(events=page, next_cursor=next_cursor, total=len(matching))

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoint(self, consumer: str, transaction: _PendingWrite | None = None) -> int:
        """Return the last position ``consumer`` has processed (0 if none), including the transaction's change."""
        self._check_open()
        if transaction is not None and consumer in transaction.checkpoints:
            return transaction.checkpoints[consumer]
        return self._call(self._read_checkpoint(_checkpoint_key(consumer)), "read checkpoints of")

    async def _read_checkpoint(self, key: str) -> int:
        try:
            entry = await self._bucket.get(key)
        except KeyNotFoundError:
            return 0
        return int(entry.value or b"0")

    def set_checkpoint(self, transaction: _PendingWrite, consumer: str, position: int) -> None:
        """Record ``position`` for ``consumer``, written when the transaction commits."""
        transaction.checkpoints[consumer] = int(position)

    def checkpoints(self) -> dict[str, int]:
        """Return every consumer's checkpoint."""
        self._check_open()
        return self._call(self._read_checkpoints(), "read checkpoints of")

    async def _read_checkpoints(self) -> dict[str, int]:
        try:
            keys = await self._bucket.keys()
        except NoKeysError:
            return {}
        values = {_consumer_name(key): await self._read_checkpoint(key) for key in keys}
        return dict(sorted(values.items()))
