"""The relay: this machine's local log ⇄ the team's JetStream stream.

Two loops share one NATS connection:

* **Outbox.** Reads the local log in batches after the outbox checkpoint
  (``relay.outbox.<stream>`` in the log's checkpoint table) and publishes
  each event on ``<prefix>.<project>.<type>`` with the event id as
  ``Nats-Msg-Id``. Once JetStream has acknowledged a batch and every batch
  before it, the relay moves the checkpoint to the batch's end in its own log
  transaction. The next batch is sent while the previous one's
  acknowledgements arrive. A crash or lost connection before that commit
  republishes from the checkpoint, and JetStream drops the copies inside its
  duplicate window. Events whose ``metadata.origin`` names another machine
  came from the stream and are never published again.
* **Inbox.** Fetches from this machine's durable pull consumer, appends the
  other machines' events to the local log in one transaction per batch
  (idempotent on event id, so a redelivery stores nothing twice), and
  acknowledges them only after that commit. Its own events, delivered back,
  are acknowledged and skipped. Messages of a relay that stops are released
  for immediate redelivery; those of a relay that dies come back after
  :data:`~mcp_server.team.settings.ACK_WAIT`.

Publishes are pipelined and keep log order on the one connection. After a
failure the relay republishes from the checkpoint, so an event whose publish
failed while a later one succeeded can land after it in the stream. Receivers
do not depend on that order.

:meth:`Relay.run` keeps going until it is cancelled: when the connection, the
stream or the local log fails, it logs why, waits with exponential backoff and
starts a new session from the outbox checkpoint and the consumer's ack floor.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel
import nats
import nats.errors
from anyio.abc import TaskStatus
from nats.aio.client import Client
from nats.aio.msg import Msg

from mcp_server import ids
from mcp_server.errors import (
    ClosedError,
    ConfigurationError,
    EventsyncError,
    InvalidEventError,
    StoreError,
)
from mcp_server.events import make_event
from mcp_server.store.base import StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog
from mcp_server.team.publish import OutgoingMessage, PendingBatch, send_batch
from mcp_server.team.pull import PullReader
from mcp_server.team.settings import ACK_WAIT, TeamSettings, redact_url
from mcp_server.team.streams import ensure_consumer, ensure_stream
from mcp_server.team.wire import decode_event, encode_event, origin_of, parse_body

__all__ = [
    "ACK_TIMEOUT",
    "BATCHES_IN_FLIGHT",
    "FETCH_BATCH",
    "OUTBOX_POLL_INTERVAL",
    "PUBLISH_BATCH",
    "Relay",
    "RelayStatistics",
    "configured_relay",
]

logger = logging.getLogger(__name__)

PUBLISH_BATCH = 500
"""Local events read and sent per outbox step; the checkpoint advances once per acknowledged batch."""

BATCHES_IN_FLIGHT = 2
"""Batches sent but not yet acknowledged; the next batch is read and sent while the previous one's acknowledgements arrive."""

BACKLOG_YIELD = 1.0
"""Seconds the inbox may wait for the outbox to finish a backlog (full batches) before fetching anyway."""

BACKLOG_CHECK_INTERVAL = 0.01
"""Seconds between the waiting inbox's checks of whether the backlog is gone."""

ACK_TIMEOUT = 10.0
"""Seconds to wait for JetStream's acknowledgements of one batch before starting a new session."""

FETCH_BATCH = 256
"""Messages requested per fetch; one batch is committed to the local log in one transaction."""

FETCH_WAIT = 1.0
"""Seconds one fetch waits on the server for messages; it returns as soon as some arrive.

A fetch is not interrupted, so stopping the relay waits up to this long; an
idle relay sends one pull request per interval.
"""

OUTBOX_POLL_INTERVAL = 0.05
"""Seconds between checks of the local log for new events when the outbox is idle.

Half of it is the average delay the relay adds to an event's trip to other
machines; a check is one indexed SQLite query.
"""

RECONNECT_BACKOFF = (0.5, 30.0)
"""First and longest wait in seconds between sessions; the wait doubles after each failed one, with jitter."""

CLIENT_RECONNECT_ATTEMPTS = 3
"""Reconnects per server the NATS client tries on its own before the session ends and the relay backs off."""

CLIENT_RECONNECT_WAIT = 1.0
"""Seconds the NATS client waits between its own reconnect attempts to one server."""

API_TIMEOUT = 5.0
"""Seconds to wait for the reply to a JetStream API request (stream and consumer info, create)."""

CLOSE_TIMEOUT = 5.0
"""Seconds allowed for closing the connection when a session ends."""

LOCAL_RETRY_WAIT = 1.0
"""Seconds between retries of a local commit that failed, for example on a held write lock."""

LOG_REPEAT_INTERVAL = 60.0
"""Seconds during which repeats of one warning are counted instead of logged."""


@dataclass(frozen=True, slots=True)
class RelayStatistics:
    """Counters since the relay was created.

    ``published`` counts events JetStream acknowledged, duplicates included.
    ``applied`` counts other machines' events newly stored here, and
    ``already_stored`` those the local log contained already. ``echoes``
    counts this machine's own events delivered back, and ``rejected`` counts
    messages that were not valid events.
    """

    published: int = 0
    applied: int = 0
    already_stored: int = 0
    echoes: int = 0
    rejected: int = 0
    sessions: int = 0
    connected: bool = False
    last_error: str | None = None


class _Throttle:
    """Counts repeats of a warning and lets one through per :data:`LOG_REPEAT_INTERVAL`."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -LOG_REPEAT_INTERVAL) < LOG_REPEAT_INTERVAL:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        suppressed = self._suppressed.pop(key, 0)
        self._last[key] = now
        suffix = f" ({suppressed} similar messages suppressed)" if suppressed else ""
        logger.warning(message + suffix, *args)


class Relay:
    """Publishes this machine's events to JetStream and stores other machines' events locally."""

    def __init__(
        self,
        log: SQLiteEventLog,
        settings: TeamSettings,
        *,
        prepare: Callable[[], object] | None = None,
        resync: bool = False,
    ) -> None:
        """Relay between ``log`` and the stream named in ``settings``.

        Args:
            log: this machine's event log.
            settings: where and as whom to publish.
            prepare: called in a worker thread before each outbox read, for
                example to ingest captured events into the log.
            resync: recreate this machine's consumer on the first connection,
                so the whole stream is read again (the log skips what it holds).
        """
        self.log = log
        self.settings = settings
        self._prepare = prepare
        self._resync = resync
        self._statistics = RelayStatistics()
        self._throttle = _Throttle()
        self._outbox_backlog = False

    @property
    def outbox_checkpoint(self) -> str:
        """Checkpoint name of the last local position whose publish JetStream acknowledged."""
        return f"relay.outbox.{self.settings.stream}"

    @property
    def statistics(self) -> RelayStatistics:
        """A snapshot of the relay's counters."""
        return self._statistics

    def _count(self, **changes: Any) -> None:
        current = self._statistics
        updates = {
            name: getattr(current, name) + value if isinstance(value, int) and not isinstance(value, bool) else value
            for name, value in changes.items()
        }
        self._statistics = replace(current, **updates)

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Relay until cancelled, reconnecting with backoff after every failure.

        Reports started at once: the server and the CLI go on working while
        NATS is unreachable, and the outbox catches up when it returns.

        Raises:
            ClosedError: the local log was closed.
        """
        logger.info("relay starting: %s", self.settings.describe())
        task_status.started()
        try:
            await self._run_sessions()
        finally:
            logger.info("relay stopped after publishing %d and applying %d events", self._statistics.published,
                        self._statistics.applied)

    async def _run_sessions(self) -> None:
        failures = 0
        while True:
            sessions_before = self._statistics.sessions
            try:
                await self._session()
            except Exception as exc:  # contained on purpose: the relay outlives NATS and network failures
                closed = _closed_error_in(exc)
                if closed is not None:
                    raise closed from exc
                reason = _describe_error(exc)
                self._count(last_error=reason)
                failures = 1 if self._statistics.sessions > sessions_before else failures + 1
                delay = _backoff(failures)
                logger.warning("relay session ended: %s; reconnecting in %.1f s", reason, delay)
                logger.debug("relay session failure", exc_info=exc)
                await anyio.sleep(delay)

    async def _session(self) -> None:
        """Connect, make sure the stream and consumer exist, and run both loops until one fails."""
        closing = anyio.Event()
        connection = await nats.connect(**self._connect_options(closing))
        try:
            js = connection.jetstream(timeout=API_TIMEOUT)
            await ensure_stream(js, self.settings)
            await ensure_consumer(js, self.settings, recreate=self._resync)
            self._resync = False
            reader = PullReader(connection, self.settings.stream, self.settings.durable_name)
            await reader.start()
            self._count(sessions=1, connected=True)
            logger.info(
                "relay connected to %s as machine %s (stream %s, consumer %s)",
                _server_of(connection), self.settings.machine_id, self.settings.stream, self.settings.durable_name,
            )
            async with anyio.create_task_group() as group:
                group.start_soon(self._outbox_loop, connection)
                group.start_soon(self._inbox_loop, reader)
        finally:
            self._count(connected=False)
            closing.set()
            with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                await connection.close()

    def _connect_options(self, closing: anyio.Event) -> dict[str, Any]:
        """Return ``nats.connect`` arguments whose callbacks log connection changes not caused by ``closing``."""

        async def on_disconnected() -> None:
            if not closing.is_set():
                logger.warning("relay lost its connection to NATS; the client reconnects")

        async def on_reconnected() -> None:
            logger.info("relay reconnected to NATS")

        async def on_error(exc: Exception) -> None:
            self._throttle.warning("client-error", "NATS client error: %s", _describe_error(exc))

        async def on_closed() -> None:
            logger.debug("relay connection to NATS closed")

        return {
            **self.settings.connect_options(),
            "allow_reconnect": True,
            "max_reconnect_attempts": CLIENT_RECONNECT_ATTEMPTS,
            "reconnect_time_wait": CLIENT_RECONNECT_WAIT,
            "connect_timeout": API_TIMEOUT,
            "disconnected_cb": on_disconnected,
            "reconnected_cb": on_reconnected,
            "error_cb": on_error,
            "closed_cb": on_closed,
        }

    # -- outbox --------------------------------------------------------------------------

    async def _outbox_loop(self, connection: Client) -> None:
        """Publish the log after the outbox checkpoint, keeping up to :data:`BATCHES_IN_FLIGHT` batches unanswered.

        The checkpoint advances batch by batch in log order, each time only
        after every message of the batch and of the batches before it was
        acknowledged.
        """
        read_through = await anyio.to_thread.run_sync(self.log.checkpoint, self.outbox_checkpoint)
        in_flight: deque[tuple[PendingBatch, int, int]] = deque()
        try:
            while True:
                await self._prepare_local()
                events = await anyio.to_thread.run_sync(partial(self.log.read_after, read_through, limit=PUBLISH_BATCH))
                self._outbox_backlog = len(events) == PUBLISH_BATCH
                if events:
                    pending, count = await self._send(connection, events)
                    read_through = events[-1].position
                    in_flight.append((pending, count, read_through))
                while in_flight and (not events or in_flight[0][0].done or len(in_flight) > BATCHES_IN_FLIGHT):
                    pending, count, last_position = in_flight.popleft()
                    await self._confirm(pending, count, last_position)
                if not events:
                    await anyio.sleep(OUTBOX_POLL_INTERVAL)
        finally:
            self._outbox_backlog = False

    async def _prepare_local(self) -> None:
        if self._prepare is None:
            return
        try:
            await anyio.to_thread.run_sync(self._prepare)
        except ClosedError:
            raise
        except EventsyncError as exc:
            # Contained on purpose: events already in the log can still be relayed.
            self._throttle.warning("prepare", "relay could not bring captured events into the log: %s", exc)

    async def _send(self, connection: Client, events: list[StoredEvent]) -> tuple[PendingBatch, int]:
        """Send the batch's local events without waiting; return the pending acknowledgements and how many were sent.

        Raises:
            nats.errors.Error: the connection failed.
        """
        outgoing: list[OutgoingMessage] = []
        oversized: list[tuple[StoredEvent, int]] = []
        for event in events:
            if self._is_foreign(event):
                continue
            body, headers = encode_event(event.to_dict(), self.settings.machine_id)
            size = len(body) + sum(len(key) + len(value) + 4 for key, value in headers.items())
            if size > connection.max_payload:
                oversized.append((event, size))
                continue
            outgoing.append(OutgoingMessage(self.settings.subject(event.type), body, headers))
        if oversized:
            await anyio.to_thread.run_sync(self._record_oversized, oversized, connection.max_payload)
        return await send_batch(connection, outgoing), len(outgoing)

    async def _confirm(self, pending: PendingBatch, count: int, last_position: int) -> None:
        """Wait for a batch's acknowledgements, then move the outbox checkpoint to its last event.

        Raises:
            StoreError: JetStream rejected a message or sent no acknowledgement within :data:`ACK_TIMEOUT`.
        """
        result = await pending.wait(ACK_TIMEOUT)
        if not result.complete:
            raise StoreError(
                f"JetStream stream {self.settings.stream!r} acknowledged {result.acknowledged} of {count} "
                f"events: {result.first_failure()}; the batch is published again"
            )
        self._count(published=count)
        await anyio.to_thread.run_sync(self._save_outbox_checkpoint, last_position)

    def _is_foreign(self, event: StoredEvent) -> bool:
        origin = event.metadata.get("origin")
        return isinstance(origin, str) and bool(origin) and origin != self.settings.machine_id

    def _save_outbox_checkpoint(self, position: int) -> None:
        with self.log.transaction() as connection:
            self.log.set_checkpoint(connection, self.outbox_checkpoint, position)

    def _record_oversized(self, oversized: list[tuple[StoredEvent, int]], limit: int) -> None:
        """Record ``event.failed`` for events too large for the server, which no retry can publish."""
        failures = []
        for event, size in oversized:
            error = f"message of {size} bytes exceeds the NATS server's max_payload of {limit} bytes"
            logger.error("relay cannot publish event %s (%s): %s; it stays local", event.id, event.type, error)
            failures.append(
                make_event(
                    "event.failed",
                    {
                        "event_id": event.id,
                        "event_type": event.type,
                        "handler": "relay",
                        "error_type": "MaxPayloadError",
                        "error": error,
                        "attempt": 1,
                    },
                    source="relay",
                    cause=event,
                    event_id=ids.derived_event_id("relay.oversized", event.id),
                )
            )
        self.log.append(failures)

    # -- inbox ---------------------------------------------------------------------------

    async def _inbox_loop(self, reader: PullReader) -> None:
        while True:
            await self._yield_to_backlog()
            # Shielded, because cancelling a fetch while messages arrive strands them until AckWait expires.
            # A finished fetch hands them to _apply, which releases them if the session is ending.
            with anyio.CancelScope(shield=True):
                messages = await reader.fetch(FETCH_BATCH, FETCH_WAIT)
            if messages:
                await self._apply(messages)
            else:
                await anyio.lowlevel.checkpoint()

    async def _yield_to_backlog(self) -> None:
        """Wait while the outbox publishes a backlog, for at most :data:`BACKLOG_YIELD`.

        Most of what the inbox receives during a backlog is this machine's own
        events coming back, which it only acknowledges. Deferring that work
        lets the backlog reach the other machines sooner; their events wait at
        most :data:`BACKLOG_YIELD` longer.
        """
        deadline = anyio.current_time() + BACKLOG_YIELD
        while self._outbox_backlog and anyio.current_time() < deadline:
            await anyio.sleep(BACKLOG_CHECK_INTERVAL)

    async def _apply(self, messages: list[Msg]) -> None:
        """Store other machines' events from ``messages`` locally, then acknowledge them.

        If the session ends before every message is acknowledged, the rest
        are negatively acknowledged so the next session gets them at once
        rather than after :data:`~mcp_server.team.settings.ACK_WAIT`.
        """
        answered = 0
        try:
            events, rejected, echoes = self._decode(messages)
            stored = 0
            if events:
                async with anyio.create_task_group() as group:
                    group.start_soon(_report_progress, messages)
                    stored = await self._store_remote(events)
                    group.cancel_scope.cancel()
            self._count(applied=stored, already_stored=len(events) - stored, echoes=echoes, rejected=len(rejected))

            for message in messages:
                error = rejected.get(id(message))
                if error is None:
                    await message.ack()
                else:
                    logger.error(
                        "relay rejected message %d on %s: %s; it is terminated and will not be redelivered",
                        message.metadata.sequence.stream, message.subject, error,
                    )
                    await message.term()
                answered += 1
        finally:
            if answered < len(messages):
                await _release(messages[answered:])

    def _decode(self, messages: list[Msg]) -> tuple[list[dict[str, Any]], dict[int, InvalidEventError], int]:
        """Return the other machines' events, the invalid messages (by ``id()``) and the count of own events."""
        events: list[dict[str, Any]] = []
        rejected: dict[int, InvalidEventError] = {}
        echoes = 0
        for message in messages:
            try:
                body = parse_body(message.data)
                if origin_of(body) == self.settings.machine_id:
                    echoes += 1
                    continue
                events.append(decode_event(body, message.headers))
            except InvalidEventError as exc:
                rejected[id(message)] = exc
        return events, rejected, echoes

    async def _store_remote(self, events: list[dict[str, Any]]) -> int:
        """Append ``events`` in one transaction, retrying while the local log is busy; return how many were new."""
        while True:
            try:
                stored = await anyio.to_thread.run_sync(self.log.append, events)
            except ClosedError:
                raise
            except StoreError as exc:
                self._throttle.warning("store", "relay could not store %d remote events: %s; retrying", len(events), exc)
                await anyio.sleep(LOCAL_RETRY_WAIT)
            else:
                return len(stored)


def configured_relay(log: SQLiteEventLog, *, root: str, data_dir: str, environ: Mapping[str, str]) -> Relay | None:
    """Return the relay the MCP server runs when ``EVENTSYNC_NATS_URL`` is set, else None.

    Invalid team settings are logged and leave the server working locally,
    because its tools do not depend on the relay.
    """
    if not environ.get("EVENTSYNC_NATS_URL"):
        return None
    try:
        settings = TeamSettings.from_environ(environ, root=root, data_dir=data_dir)
    except ConfigurationError as exc:
        logger.error("team mode is off: %s", exc)
        return None
    return Relay(log, settings)


async def _report_progress(messages: list[Msg]) -> None:
    """Tell JetStream every third of AckWait that ``messages`` are still being stored, until cancelled."""
    while True:
        await anyio.sleep(ACK_WAIT / 3)
        for message in messages:
            await message.in_progress()


async def _release(messages: list[Msg]) -> None:
    """Negatively acknowledge ``messages`` so JetStream redelivers them now; best effort while a session ends."""
    with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
        for message in messages:
            try:
                await message.nak()
            except nats.errors.Error:
                # Contained on purpose: the connection is going away, and AckWait redelivers the rest.
                return


def _closed_error_in(exc: BaseException) -> ClosedError | None:
    """Return the :class:`ClosedError` in ``exc`` or in the exception groups task groups wrap it in."""
    if isinstance(exc, ClosedError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _closed_error_in(inner)
            if found is not None:
                return found
    return None


def _backoff(failures: int) -> float:
    first, longest = RECONNECT_BACKOFF
    ceiling = min(longest, first * 2 ** min(max(failures - 1, 0), 16))
    return ceiling * random.uniform(0.5, 1.0)


def _server_of(connection: Client) -> str:
    url = connection.connected_url
    return redact_url(url.geturl()) if url is not None else "no server"


def _describe_error(exc: BaseException) -> str:
    """Return ``Type: message`` for ``exc``, looking inside exception groups from task groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe_error(inner) for inner in exc.exceptions)
    text = str(exc) or getattr(exc, "description", None) or ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
