"""The in-process event bus: subscriptions, dispatch, failures and causation limits.

Publishing appends to the log first, and delivery reads from the log. So local
subscribers see events from this process and, through the runtime's tailer,
events appended by hooks and other processes, all in log order.

What a handler may assume:

* **Order.** Each subscription receives matching events one at a time in log
  order. Different subscriptions run concurrently, so handlers must not rely
  on each other's progress.
* **Isolation.** A handler that raises, or runs longer than its time limit,
  does not affect other handlers or the publisher. The bus appends an
  ``event.failed`` event (event id and type, handler, error type and message,
  attempt) and logs the error. A failure while handling ``event.failed``
  is only logged, so failures never cascade.
* **Causation.** Events published while a handler runs are linked to the event
  being handled (``causation_id``, ``correlation_id``, ``depth``). A chain
  deeper than ``max_depth`` is cut: the publish is refused, one
  ``event.failed`` with reason ``causation depth limit`` is stored, and the
  call returns None. Inside a handler, publishing only appends to the log and
  the next dispatch delivers the event, so a handler that publishes and
  awaits never waits on delivery and cannot deadlock.
* **Time limits.** A coroutine handler gets its limit per event (at least the
  limit, at most twice it, which keeps the check cheap). A plain
  function runs in a worker thread over a whole batch of events, and the limit
  covers the batch: Python cannot stop a thread, so on timeout the bus stops
  waiting and records the unfinished events as failed while the thread runs on.
* **Backpressure.** Events reach a subscription in batches of up to
  :data:`DISPATCH_BATCH` through a bounded queue. When it is full the
  dispatcher waits for room, so a slow handler slows delivery to everyone
  behind it but loses nothing; the handler time limit bounds that wait.
* **Delivery is at most once per process.** Local subscriptions are for
  in-memory state. State that must survive restarts belongs in a durable
  consumer (see :mod:`mcp_server.consumers`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from mcp_server import subjects
from mcp_server.errors import ClosedError
from mcp_server.events import MAX_CAUSATION_DEPTH, causation_depth, make_event
from mcp_server.store.base import StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog

__all__ = ["DEFAULT_MAX_DEPTH", "EventBus", "Handler", "Subscription", "SubscriptionStats", "current_event"]

logger = logging.getLogger(__name__)

Handler = Callable[[StoredEvent], Awaitable[None] | None]

DEFAULT_MAX_DEPTH = MAX_CAUSATION_DEPTH

DISPATCH_BATCH = 500
"""Events read from the log and handed to a subscription at once; one queue operation per batch."""

DEFAULT_QUEUE_SIZE = 1000
"""Events buffered per subscription (in whole batches) before the dispatcher waits."""

DEFAULT_HANDLER_TIMEOUT = 30.0
"""Seconds one handler call may take before it counts as failed."""

FAILED = "event.failed"

current_event: ContextVar[StoredEvent | None] = ContextVar("eventsync_current_event", default=None)
"""The event whose handler is running in this context, used to link causation."""


@dataclass(slots=True)
class SubscriptionStats:
    """Counters of one subscription."""

    delivered: int = 0
    failed: int = 0
    last_position: int = 0
    pending: int = 0


@dataclass(slots=True)
class Subscription:
    """A handler bound to one or more type patterns."""

    name: str
    patterns: tuple[str, ...]
    handler: Handler
    timeout: float
    stats: SubscriptionStats = field(default_factory=SubscriptionStats)
    _send: MemoryObjectSendStream[list[StoredEvent]] | None = None
    _receive: MemoryObjectReceiveStream[list[StoredEvent]] | None = None
    _accepted: dict[str, bool] = field(default_factory=dict)

    def accepts(self, event_type: str) -> bool:
        """Return whether this subscription wants events of ``event_type``."""
        accepted = self._accepted.get(event_type)
        if accepted is None:
            accepted = self._accepted[event_type] = any(subjects.matches(p, event_type) for p in self.patterns)
        return accepted


def _event_loop_clock() -> Callable[[], float]:
    """Return the running event loop's clock, the one cancel-scope deadlines are measured on.

    On asyncio that is ``loop.time``, which is what ``anyio.current_time`` calls after
    looking up the backend; calling it directly saves that look-up for every event.
    """
    try:
        return asyncio.get_running_loop().time
    except RuntimeError:
        return anyio.current_time


def _time_limit(seconds: float) -> float:
    """Return ``seconds`` as a handler time limit, where 0 or less means no limit."""
    return seconds if seconds > 0 else math.inf


def _handler_name(handler: Handler) -> str:
    return getattr(handler, "__qualname__", None) or getattr(handler, "__name__", None) or repr(handler)


class EventBus:
    """Subscriptions and dispatch for one process, on top of an event log."""

    def __init__(
        self,
        log: SQLiteEventLog,
        *,
        source: str = "bus",
        max_depth: int = DEFAULT_MAX_DEPTH,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        handler_timeout: float = DEFAULT_HANDLER_TIMEOUT,
    ) -> None:
        self.log = log
        self.source = source
        self.max_depth = max_depth
        self._queue_size = queue_size
        self._handler_timeout = handler_timeout
        self._subscriptions: list[Subscription] = []
        self._dispatched = log.head()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._dispatch_lock = anyio.Lock()
        self._idle = anyio.Event()
        self._closed = False

    # -- subscribing -----------------------------------------------------------------

    def subscribe(
        self, patterns: str | Sequence[str], handler: Handler, *, name: str | None = None, timeout: float | None = None
    ) -> Subscription:
        """Deliver future events matching ``patterns`` to ``handler``.

        ``handler`` may be a coroutine function or a plain function; plain
        functions run in a worker thread so they cannot block the event loop.

        Raises:
            InvalidEventError: a pattern is malformed.
            ClosedError: the bus was closed.
        """
        if self._closed:
            raise ClosedError("the event bus is closed; subscribe before closing it")
        requested = (patterns,) if isinstance(patterns, str) else tuple(patterns)
        for pattern in requested:
            subjects.validate_pattern(pattern)
        subscription = Subscription(
            name=name or _handler_name(handler),
            patterns=requested,
            handler=handler,
            timeout=_time_limit(self._handler_timeout if timeout is None else timeout),
        )
        buffered_batches = max(1, self._queue_size // DISPATCH_BATCH)
        subscription._send, subscription._receive = anyio.create_memory_object_stream[list[StoredEvent]](
            buffered_batches
        )
        self._subscriptions.append(subscription)
        if self._task_group is not None:
            self._task_group.start_soon(self._work, subscription)
        return subscription

    # alias in the style of event emitters
    on = subscribe

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """Every subscription, in registration order."""
        return tuple(self._subscriptions)

    # -- publishing ------------------------------------------------------------------

    def publish_nowait(
        self,
        event_type: str,
        payload: dict[str, Any] | None = None,
        *,
        source: str | None = None,
        session_id: str | None = None,
        cause: StoredEvent | None = None,
    ) -> StoredEvent | None:
        """Append an event to the log; callable from the event loop or any thread.

        Returns the stored event, or None when the causation chain was cut or
        an event with the same id was already stored. Delivery happens on the
        next dispatch.

        Raises:
            InvalidEventError: the type or payload is invalid.
        """
        cause = cause if cause is not None else current_event.get()
        if cause is not None and causation_depth(cause) + 1 > self.max_depth:
            self._record_depth_cut(event_type, cause)
            return None
        event = make_event(event_type, payload or {}, source=source or self.source, session_id=session_id, cause=cause)
        stored = self.log.append([event])
        return stored[0] if stored else None

    async def publish(
        self,
        event_type: str,
        payload: dict[str, Any] | None = None,
        *,
        source: str | None = None,
        session_id: str | None = None,
        cause: StoredEvent | None = None,
    ) -> StoredEvent | None:
        """Append an event and dispatch it to local subscriptions; see :meth:`publish_nowait`."""
        stored = self.publish_nowait(event_type, payload, source=source, session_id=session_id, cause=cause)
        await self._dispatch_unless_handling()
        return stored

    emit = publish

    async def publish_many(
        self, events: Sequence[tuple[str, dict[str, Any]]], *, source: str | None = None, session_id: str | None = None
    ) -> list[StoredEvent]:
        """Append several ``(type, payload)`` events in one transaction, then dispatch them.

        Either all are stored or none is. Returns the events that were new.

        Raises:
            InvalidEventError: a type or payload is invalid; nothing is stored.
        """
        cause = current_event.get()
        if cause is not None and causation_depth(cause) + 1 > self.max_depth:
            self._record_depth_cut(events[0][0] if events else "?", cause)
            return []
        batch = [
            make_event(event_type, payload, source=source or self.source, session_id=session_id, cause=cause)
            for event_type, payload in events
        ]
        stored = self.log.append(batch)
        await self._dispatch_unless_handling()
        return stored

    async def _dispatch_unless_handling(self) -> None:
        """Dispatch now, except inside a handler.

        A handler that dispatched could wait for room in its own full queue, or
        for the dispatch lock held by a dispatcher waiting on that queue: both
        deadlock. Its events are delivered by the next dispatch instead.
        """
        if current_event.get() is None:
            await self.dispatch_pending()

    def _lag(self, subscription: Subscription, head: int) -> int:
        """Positions between the head and what ``subscription`` has handled or had no interest in."""
        undispatched = max(0, head - self._dispatched)
        if subscription.stats.pending == 0:
            return undispatched
        return undispatched + max(0, self._dispatched - subscription.stats.last_position)

    def statistics(self) -> list[dict[str, Any]]:
        """Return per-subscription counts: delivered, failed, pending, and lag in positions behind the head."""
        head = self.log.head()
        return [
            {
                "name": subscription.name,
                "patterns": list(subscription.patterns),
                "delivered": subscription.stats.delivered,
                "failed": subscription.stats.failed,
                "pending": subscription.stats.pending,
                "lag": self._lag(subscription, head),
            }
            for subscription in self._subscriptions
        ]

    def _record_depth_cut(self, event_type: str, cause: StoredEvent) -> None:
        logger.warning(
            "causation depth limit %d reached: rejected %s caused by %s (%s); check the handlers for a cycle",
            self.max_depth, event_type, cause.id, cause.type,
        )
        failure = make_event(
            FAILED,
            {
                "reason": "causation depth limit",
                "event_id": cause.id,
                "event_type": cause.type,
                "refused_type": event_type,
                "depth": causation_depth(cause) + 1,
                "max_depth": self.max_depth,
            },
            source=self.source,
            cause=cause,
        )
        self.log.append([failure])

    # -- dispatch --------------------------------------------------------------------

    async def dispatch_pending(self) -> int:
        """Deliver events appended since the last dispatch to matching subscriptions."""
        if self._task_group is None:
            return 0
        async with self._dispatch_lock:
            return await self._dispatch_locked()

    async def _dispatch_locked(self) -> int:
        delivered = 0
        while True:
            batch = self.log.read_after(self._dispatched, limit=DISPATCH_BATCH)
            if not batch:
                return delivered
            self._dispatched = batch[-1].position
            types = {event.type for event in batch}
            for subscription in self._subscriptions:
                accepted = {event_type for event_type in types if subscription.accepts(event_type)}
                if len(accepted) == len(types):
                    matching = batch
                else:
                    matching = [event for event in batch if event.type in accepted]
                if matching and subscription._send is not None:
                    subscription.stats.pending += len(matching)
                    await subscription._send.send(matching)
                    delivered += len(matching)

    async def wait_idle(self) -> None:
        """Dispatch until every event in the log, including those handlers emit, has been handled."""
        while True:
            await self.dispatch_pending()
            self._idle = anyio.Event()
            if any(subscription.stats.pending for subscription in self._subscriptions):
                await self._idle.wait()
                continue
            if self.log.head() <= self._dispatched:
                return

    async def _work(self, subscription: Subscription) -> None:
        receive = subscription._receive
        assert receive is not None
        asynchronous = inspect.iscoroutinefunction(subscription.handler)
        async with receive:
            async for batch in receive:
                if asynchronous:
                    await self._call_async(subscription, batch)
                else:
                    await self._call_sync(subscription, batch)

    async def _call_async(self, subscription: Subscription, batch: list[StoredEvent]) -> None:
        """Await the handler on each event under one cancel scope per stretch of the batch.

        Moving a deadline re-creates an event-loop timer, which cost more than
        the handlers themselves, so the deadline is moved only when less than
        one time limit remains: each event gets between one and two limits.
        """
        limit = subscription.timeout
        clock = _event_loop_clock()
        handler = subscription.handler
        stats = subscription.stats
        remaining = batch
        while remaining:
            deadline = clock() + 2 * limit
            offset = 0
            with anyio.CancelScope(deadline=deadline) as scope:
                for offset, event in enumerate(remaining):
                    now = clock()
                    if deadline - now < limit:
                        deadline = scope.deadline = now + 2 * limit
                    token = current_event.set(event)
                    try:
                        await handler(event)  # type: ignore[misc]
                    except Exception as exc:  # noqa: BLE001 - isolation: a handler error must not reach the publisher
                        self._finish(subscription, event, exc)
                    else:
                        # The success path of _finish, inlined: it runs once per event and handler.
                        stats.delivered += 1
                        stats.last_position = event.position
                        stats.pending -= 1
                    finally:
                        current_event.reset(token)
            if not scope.cancelled_caught:
                break
            self._finish(subscription, remaining[offset], TimeoutError(
                f"handler ran longer than its {subscription.timeout:g} s limit"))
            remaining = remaining[offset + 1:]
        if stats.pending == 0:
            self._idle.set()

    async def _call_sync(self, subscription: Subscription, batch: list[StoredEvent]) -> None:
        """Run a plain handler on the batch in one worker thread; the time limit covers the whole batch."""
        outcomes: list[tuple[StoredEvent, BaseException | None, object]] = []

        def run_batch() -> None:
            for event in batch:
                token = current_event.set(event)
                try:
                    outcomes.append((event, None, subscription.handler(event)))
                except Exception as exc:  # noqa: BLE001 - reported per event below
                    outcomes.append((event, exc, None))
                finally:
                    current_event.reset(token)

        with anyio.move_on_after(subscription.timeout):
            await anyio.to_thread.run_sync(run_batch, abandon_on_cancel=True)
        finished = list(outcomes)
        for event, error, result in finished:
            if error is None and inspect.isawaitable(result):
                error = await self._await_result(event, result)
            self._finish(subscription, event, error)
        for event in batch[len(finished):]:
            self._finish(subscription, event, TimeoutError(
                f"handler did not finish the batch within its {subscription.timeout:g} s limit"))

    @staticmethod
    async def _await_result(event: StoredEvent, result: Awaitable[object]) -> BaseException | None:
        token = current_event.set(event)
        try:
            await result
        except Exception as exc:  # noqa: BLE001 - reported by the caller
            return exc
        finally:
            current_event.reset(token)
        return None

    def _finish(self, subscription: Subscription, event: StoredEvent, error: BaseException | None) -> None:
        if error is None:
            subscription.stats.delivered += 1
        else:
            subscription.stats.failed += 1
            self._record_failure(subscription, event, error)
        subscription.stats.last_position = event.position
        subscription.stats.pending -= 1
        if subscription.stats.pending == 0:
            self._idle.set()

    def _record_failure(self, subscription: Subscription, event: StoredEvent, exc: BaseException) -> None:
        error_type = type(exc).__name__
        logger.error(
            "handler %s failed on event %s (%s): %s: %s", subscription.name, event.id, event.type, error_type, exc
        )
        if event.type == FAILED:
            return
        failure = make_event(
            FAILED,
            {
                "event_id": event.id,
                "event_type": event.type,
                "handler": subscription.name,
                "error_type": error_type,
                "error": f"{error_type}: {exc}",
                "attempt": 1,
            },
            source=self.source,
            cause=event,
        )
        self.log.append([failure])

    # -- lifecycle -------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the subscription workers until cancelled."""
        try:
            async with anyio.create_task_group() as group:
                self._task_group = group
                for subscription in self._subscriptions:
                    group.start_soon(self._work, subscription)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._task_group = None
            self._closed = True
            for subscription in self._subscriptions:
                if subscription._send is not None:
                    subscription._send.close()

