"""Durable consumers: projections of the log that survive restarts.

A :class:`Projection` keeps derived state (the touchpoint index, the search
index, the context cache) in tables of the log's own database. The
:class:`ConsumerRunner` feeds it the events after its checkpoint and commits
the projection's writes for a run of events, the events they emit and the new
checkpoint in **one transaction**. That gives an exactly-once effect:

* After a crash the consumer resumes from its checkpoint, and nothing it
  committed is applied twice.
* Only one process runs a given consumer at a time: while it has events to
  handle, the runner holds a lease in the database, renews it while it works
  and gives it back when it has caught up. A lease whose holder stopped
  renewing it expires after :data:`LEASE_SECONDS`, or at once when the holder
  is a process on this host that no longer exists. A process that finds the
  lease taken waits until the holder has caught up. As a second guard, each
  transaction checks that the checkpoint is still the one it started from.

What a handler may assume: events arrive in log order. ``prepare`` may run
again for the same event (after a retry or a lost lease), so it must have no
side effects. ``apply`` runs inside the transaction and must only write the
projection's own tables.

Batches: the runner prepares the events of one read (up to
:data:`CATCH_UP_BATCH`) before it applies the first of them, so ``prepare``
must not depend on what ``apply`` wrote for earlier events. It then applies
them in one transaction, each inside a savepoint, and commits after
:data:`BATCH_TRANSACTION_SECONDS` or at the end of the read. Per-event
transactions and lease renewals took most of the time of a full index.
An event whose ``prepare`` or ``apply`` fails is rolled back alone. The events
before it are committed, and the failed one is retried on its own as described
below.

Failures: when ``prepare`` or ``apply`` raises or runs past its time limit,
the runner records ``event.failed`` (with the attempt number). Errors that may
pass (an I/O error, a busy database, a timeout) are retried after a short backoff; after
:data:`MAX_ATTEMPTS` attempts, or at once for any other error (a bad payload
fails the same way every time), the event is **parked**: recorded in the
``parked`` table and skipped, and the consumer moves on. Parked events can be
listed and replayed (``eventsync parked``, the ``parked_events`` tool).

Time limit: ``prepare`` and ``apply`` of one attempt share
:attr:`ConsumerRunner.handler_timeout` seconds (the ``consumers.timeout_seconds``
setting). Waiting for the write lock does not count. An overrun fails the
attempt with :class:`~mcp_server.errors.HandlerTimeoutError`, which is retried
and parked like any timeout. Python cannot stop a thread, so what is bounded
differs by part:

* ``prepare`` runs in a worker thread (the prepares of a batch one after
  another) and the runner stops waiting at the limit. The call runs on in its
  thread and its result is dropped. Because ``prepare`` has no side effects,
  only that thread and its CPU time are lost meanwhile.
  A projection that sets ``prepare_inline`` (see :class:`Projection`) has its
  ``prepare`` called directly, and an overrun is found after it returns.
* SQL that ``apply`` runs is interrupted at the limit (an SQLite progress
  handler), and the transaction is rolled back, so an overrun commits nothing.
  NOTE: after an interrupted write SQLite has already rolled back, so an
  ``apply`` that catches the error and writes again commits those writes at once.
* Python code in ``apply`` (a loop, a file scan) cannot be interrupted. The
  overrun is found when ``apply`` returns, and the transaction is then rolled
  back. An ``apply`` that never returns blocks its consumer.

Batching: when several events in one read carry the same
:meth:`Projection.coalesce_key` (bursts of saves of one file), only the last
is handled; the log keeps every one of them.

A projection whose ``version`` differs from the one recorded in the database
is dropped, recreated and rebuilt from position 0; so is one reset by
``eventsync rebuild``. While it replays events it had already seen, the events
it would emit are discarded: the log already holds the ones it emitted the
first time, and a rebuild restores state without announcing history again.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from mcp_server.errors import HandlerTimeoutError, StoreLockedError
from mcp_server.events import MAX_CAUSATION_DEPTH, causation_depth, make_event
from mcp_server.store.base import EventFilter, StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog
from mcp_server.time_limits import WorkerThreads, sql_deadline

__all__ = [
    "CATCH_UP_BATCH",
    "DEFAULT_HANDLER_TIMEOUT",
    "LEASE_SECONDS",
    "MAX_ATTEMPTS",
    "ConsumerRunner",
    "ConsumerStatistics",
    "Projection",
]

logger = logging.getLogger(__name__)

CATCH_UP_BATCH = 200
"""Events read per query while catching up, and prepared before the first of them is applied."""

BATCH_TRANSACTION_SECONDS = 0.25
"""A batch transaction commits once its applies have taken this long, so other writers wait about this at most."""

LEASE_SECONDS = 15.0
"""How long a consumer's lease lasts without renewal. The runner renews it once a third of that has passed."""

MAX_ATTEMPTS = 3
"""Attempts at one event before it is parked."""

RETRY_DELAYS = (0.05, 0.25)
"""Seconds to wait before the second and third attempts; short, because catch-up blocks readers."""

RETRYABLE_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, StoreLockedError, sqlite3.OperationalError)
"""Errors that may not happen again; any other error parks the event after its first attempt."""

DEFAULT_HANDLER_TIMEOUT = 30.0
"""Seconds ``prepare`` and ``apply`` may take together on one attempt. A value of 0 or less turns the limit off."""

_LEASE_POLL = 0.02

_PREPARE_THREADS = WorkerThreads("eventsync-prepare")
"""Shared by every runner, so idle threads number only the ``prepare`` calls that ever ran at once."""


class Projection(Protocol):
    """A durable consumer that keeps derived state in the log's database.

    Optional attributes: ``coalesce_key(event)`` (see the module's notes on
    batching) and ``prepare_inline``. Set ``prepare_inline = True`` when
    ``prepare`` does no I/O and returns at once: the runner then calls it on its
    own thread and finds an overrun only after it returns. That saves handing
    each batch to a worker thread, which cost 3 to 8 µs per event of catch-up on
    a loaded 2-vCPU virtual machine (``bench/bench_consumer_limit.py``).
    """

    name: str
    version: int
    subscriptions: tuple[str, ...]
    depends_on: tuple[str, ...]
    """Projections whose tables this one reads; resetting one of them resets this one too."""

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the projection's tables (called inside a transaction)."""

    def drop(self, connection: sqlite3.Connection) -> None:
        """Drop the projection's tables (called inside a transaction)."""

    def prepare(self, event: StoredEvent) -> Any:
        """Do the slow, side-effect-free part of handling ``event`` (for example read a file)."""

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: Any) -> list[dict[str, Any]]:
        """Write the state change for ``event`` and return the events to emit (wire form)."""


@dataclass(frozen=True, slots=True)
class ConsumerStatistics:
    """Progress and failure counts of one durable consumer."""

    name: str
    checkpoint: int
    lag: int
    failed: int
    parked: int
    handled: int
    coalesced: int
    lease_holder: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the statistics as a plain dictionary."""
        return {
            "name": self.name, "checkpoint": self.checkpoint, "lag": self.lag, "failed": self.failed,
            "parked": self.parked, "handled": self.handled, "coalesced": self.coalesced,
            "lease_holder": self.lease_holder,
        }


class _CheckpointMoved(Exception):
    """Another process advanced the checkpoint while this one prepared its work."""


class _BatchRolledBack(Exception):
    """Raised when SQLite rolled back a whole batch transaction after a failed ``apply`` (an interrupted write does)."""

    def __init__(self, failed_at: int, error: BaseException) -> None:
        super().__init__(str(error))
        self.failed_at = failed_at
        self.error = error


class _HandlerFailed(Exception):
    """``prepare`` or ``apply`` raised; carries the original error."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _coalesce_key(projection: Projection, event: StoredEvent) -> str | None:
    method = getattr(projection, "coalesce_key", None)
    return method(event) if method is not None else None


def _timeout(projection: Projection, event: StoredEvent, part: str, limit: float) -> HandlerTimeoutError:
    return HandlerTimeoutError(
        f"{projection.name}.{part} ran past the {limit:g} s time limit on event {event.id} ({event.type}); "
        "make it faster, or raise consumers.timeout_seconds in the eventsync settings"
    )


class ConsumerRunner:
    """Runs projections against a log, one transaction per event, one process per consumer."""

    def __init__(
        self,
        log: SQLiteEventLog,
        *,
        lease_seconds: float = LEASE_SECONDS,
        handler_timeout: float = DEFAULT_HANDLER_TIMEOUT,
    ) -> None:
        self.log = log
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.handler_timeout = handler_timeout
        """Seconds ``prepare`` and ``apply`` may take together on one attempt, or 0 or less for no limit."""
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._handled: dict[str, int] = {}
        self._coalesced: dict[str, int] = {}
        self._held: set[str] = set()
        self._renewed: dict[str, float] = {}

    def _lock(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())

    # -- lifecycle of a projection ---------------------------------------------------------

    def ensure(self, projection: Projection) -> bool:
        """Create the projection's tables, or rebuild them if its version changed; return True if reset."""
        # Checked before taking the write lock, so opening a runtime whose projections are current takes no write lock.
        if self.log.projection_version(self.log.connection, projection.name) == projection.version:
            return False
        with self.log.transaction() as connection:
            recorded = self.log.projection_version(connection, projection.name)
            if recorded == projection.version:
                return False
            if recorded is not None:
                logger.info(
                    "projection %s changed from version %d to %d; rebuilding it from the log",
                    projection.name, recorded, projection.version,
                )
            self._reset_in(connection, projection)
            return True

    def reset(self, projection: Projection) -> None:
        """Drop the projection's state, checkpoint and parked events so the next catch-up rebuilds it."""
        with self.log.transaction() as connection:
            self._reset_in(connection, projection)

    def _reset_in(self, connection: sqlite3.Connection, projection: Projection) -> None:
        head = int(connection.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])
        projection.drop(connection)
        projection.create(connection)
        connection.execute("DELETE FROM parked WHERE consumer = ?", (projection.name,))
        self.log.set_projection(connection, projection.name, projection.version, replay_until=head)
        self.log.set_checkpoint(connection, projection.name, 0)

    def release(self) -> None:
        """Give up every lease this runner holds (call on shutdown)."""
        for name in list(self._held):
            self.log.release_lease(name, self.holder)
            self._held.discard(name)

    # -- catching up -----------------------------------------------------------------------

    def catch_up(self, projection: Projection) -> int:
        """Bring ``projection`` up to the current head; return how many events this process handled.

        When another process holds the lease, wait until it has caught up to
        the head seen on entry (or its lease lapses and this process takes over).
        """
        target = self.log.head()
        with self._lock(projection.name):
            if self.log.checkpoint(projection.name) >= target:
                return 0
            try:
                return self._catch_up_leased(projection, target)
            finally:
                self._release_lease(projection.name)

    def _catch_up_leased(self, projection: Projection, target: int) -> int:
        handled = 0
        while True:
            if not self._take_lease(projection.name):
                if self.log.checkpoint(projection.name) >= target:
                    return handled
                time.sleep(_LEASE_POLL)
                continue
            try:
                count, finished = self._step(projection)
            except _CheckpointMoved:
                continue
            handled += count
            if finished:
                return handled

    def _release_lease(self, name: str) -> None:
        """Give the lease back as soon as the work is done, so an idle process never makes others wait."""
        if name in self._held:
            self._held.discard(name)
            self.log.release_lease(name, self.holder)

    def _take_lease(self, name: str) -> bool:
        if self.log.acquire_lease(name, self.holder, self.lease_seconds):
            self._held.add(name)
            self._renewed[name] = time.monotonic()
            return True
        self._held.discard(name)
        return False

    def _renew_lease(self, name: str) -> None:
        """Renew the lease once a third of it has passed. A renewal is a write transaction of its own."""
        if time.monotonic() - self._renewed.get(name, 0.0) > self.lease_seconds / 3:
            self.log.acquire_lease(name, self.holder, self.lease_seconds)
            self._renewed[name] = time.monotonic()

    def _step(self, projection: Projection) -> tuple[int, bool]:
        start = self.log.checkpoint(projection.name)
        head = self.log.head()
        if head <= start:
            return 0, True

        batch = [
            event
            for event in self.log.read_after(start, limit=CATCH_UP_BATCH, types=projection.subscriptions)
            if event.position <= head
        ]
        superseded = self._superseded(projection, batch)
        pending = [event for event in batch if event.id not in superseded]
        self._coalesced[projection.name] = self._coalesced.get(projection.name, 0) + len(batch) - len(pending)
        expected = self._handle_batch(projection, pending, start)
        handled = len(pending)

        if len(batch) < CATCH_UP_BATCH:
            if head > expected:
                self._advance(projection.name, expected, head)
            return handled, True
        if batch[-1].position > expected:
            self._advance(projection.name, expected, batch[-1].position)
        return handled, False

    @staticmethod
    def _superseded(projection: Projection, batch: list[StoredEvent]) -> set[str]:
        """Return ids of events that a later event in the batch with the same coalesce key replaces."""
        last_by_key: dict[str, str] = {}
        for event in batch:
            key = _coalesce_key(projection, event)
            if key is not None:
                last_by_key[key] = event.id
        keep = set(last_by_key.values())
        return {event.id for event in batch if _coalesce_key(projection, event) is not None and event.id not in keep}

    def _advance(self, name: str, expected: int, position: int) -> None:
        with self.log.transaction() as connection:
            if self.log.checkpoint(name, connection) != expected:
                raise _CheckpointMoved
            self.log.set_checkpoint(connection, name, position)

    def _handle_batch(self, projection: Projection, events: list[StoredEvent], expected: int) -> int:
        """Handle ``events`` in order, many per transaction, and return the position of the last one.

        ``expected`` is the checkpoint before the first event. An event that
        fails in a batch goes through :meth:`_handle`, with that failure as its
        first attempt.
        """
        index = 0
        while index < len(events):
            prepared, failure = self._prepare_batch(projection, events[index:])
            offset = 0
            while offset < len(prepared):
                try:
                    applied, apply_failure = self._apply_batch(projection, prepared[offset:], expected)
                except _BatchRolledBack as lost:
                    # Nothing of the batch was committed: the events before the failed one go one by one.
                    for event, _, _ in prepared[offset : offset + lost.failed_at]:
                        self._handle(projection, event, expected)
                        expected = event.position
                    offset += lost.failed_at
                    applied, apply_failure = 0, lost.error
                if applied:
                    offset += applied
                    expected = prepared[offset - 1][0].position
                if apply_failure is not None:
                    event = prepared[offset][0]
                    self._handle(projection, event, expected, first_failure=apply_failure)
                    expected = event.position
                    offset += 1
                self._renew_lease(projection.name)
            index += len(prepared)
            if failure is not None:
                event = events[index]
                self._handle(projection, event, expected, first_failure=failure)
                expected = event.position
                index += 1
        return expected

    def _prepare_batch(
        self, projection: Projection, events: list[StoredEvent]
    ) -> tuple[list[tuple[StoredEvent, Any, float]], BaseException | None]:
        """Prepare ``events`` until one fails, and return ``(event, prepared, seconds spent)`` of each and the error."""
        limit = self.handler_timeout if self.handler_timeout > 0 else None
        if limit is not None and not getattr(projection, "prepare_inline", False):
            return self._prepare_in_thread(projection, events, limit)
        prepared: list[tuple[StoredEvent, Any, float]] = []
        for event in events:
            started = time.monotonic()
            try:
                value = self._prepare(projection, event, limit)
            except Exception as exc:  # noqa: BLE001 - becomes the event's first failed attempt
                return prepared, exc
            prepared.append((event, value, time.monotonic() - started))
            self._renew_lease(projection.name)
        return prepared, None

    def _prepare_in_thread(
        self, projection: Projection, events: list[StoredEvent], limit: float
    ) -> tuple[list[tuple[StoredEvent, Any, float]], BaseException | None]:
        """Prepare ``events`` in order in a worker thread, giving up on the first that runs past ``limit``.

        The whole batch is one hand-off to the thread. The runner wakes to renew
        its lease while it waits, and when the ``prepare`` in progress reaches the limit.
        """
        calls = _PREPARE_THREADS.submit(projection.prepare, events)
        while True:
            _, started = calls.current
            if calls.wait(min(started + limit - time.monotonic(), self.lease_seconds / 3)):
                break
            self._renew_lease(projection.name)
            index, started = calls.current
            if time.monotonic() - started > limit:
                calls.abandon()
                finished = calls.results[:index]
                prepared = [(event, value, spent) for event, (value, spent) in zip(events, finished)]
                return prepared, _timeout(projection, events[index], "prepare", limit)

        prepared = [(event, value, spent) for event, (value, spent) in zip(events, calls.results)]
        if calls.error is not None and not isinstance(calls.error, Exception):
            raise calls.error
        return prepared, calls.error

    def _apply_batch(
        self, projection: Projection, prepared: list[tuple[StoredEvent, Any, float]], expected: int
    ) -> tuple[int, BaseException | None]:
        """Apply prepared events in one transaction until one fails or time is up, and return how many and the error.

        Each ``apply`` runs in a savepoint, so a failed one is undone alone and
        the events before it are committed with the checkpoint of the last.

        Raises:
            _BatchRolledBack: SQLite rolled back the whole transaction after a failure.
        """
        limit = self.handler_timeout if self.handler_timeout > 0 else None
        applied = 0
        failure: BaseException | None = None
        started = time.monotonic()
        with self.log.transaction() as connection:
            if self.log.checkpoint(projection.name, connection) != expected:
                raise _CheckpointMoved
            replay_until = self.log.replay_until(projection.name, connection)
            for event, value, spent in prepared:
                connection.execute("SAVEPOINT consumer_event")
                try:
                    if limit is None:
                        emitted = projection.apply(connection, event, value)
                    else:
                        emitted = self._apply_within(connection, projection, event, value, limit, spent)
                except Exception as exc:  # noqa: BLE001 - becomes the event's first failed attempt
                    if not connection.in_transaction:
                        raise _BatchRolledBack(applied, exc) from exc
                    connection.execute("ROLLBACK TO consumer_event")
                    connection.execute("RELEASE consumer_event")
                    failure = exc
                    break
                if event.position > replay_until:
                    self.log.append_in(connection, self._within_depth(projection, event, emitted))
                connection.execute("RELEASE consumer_event")
                applied += 1
                if time.monotonic() - started > BATCH_TRANSACTION_SECONDS:
                    break
            if applied:
                self.log.set_checkpoint(connection, projection.name, prepared[applied - 1][0].position)
        self._handled[projection.name] = self._handled.get(projection.name, 0) + applied
        return applied, failure

    def _handle(
        self, projection: Projection, event: StoredEvent, expected: int, *, first_failure: BaseException | None = None
    ) -> None:
        """Handle one event in its own transactions, with retries. ``first_failure`` is an attempt already made."""
        first = 1
        if first_failure is not None:
            if self._handle_failure(projection, event, expected, first_failure, 1):
                return
            first = 2
        for attempt in range(first, MAX_ATTEMPTS + 1):
            try:
                self._attempt(projection, event, expected)
                self._handled[projection.name] = self._handled.get(projection.name, 0) + 1
                return
            except _HandlerFailed as failure:
                if self._handle_failure(projection, event, expected, failure.error, attempt):
                    return

    def _handle_failure(self, projection: Projection, event: StoredEvent, expected: int, error: BaseException,
                        attempt: int) -> bool:
        """Record a failed attempt and wait before the next, or return True when the event was parked instead."""
        last = attempt == MAX_ATTEMPTS or not isinstance(error, RETRYABLE_ERRORS)
        self._record_failure(projection, event, expected, error, attempt, park=last)
        if not last:
            time.sleep(RETRY_DELAYS[min(attempt - 1, len(RETRY_DELAYS) - 1)])
        return last

    def _attempt(self, projection: Projection, event: StoredEvent, expected: int | None) -> None:
        """Prepare and apply ``event`` in one transaction; with ``expected`` None the checkpoint is left alone."""
        limit = self.handler_timeout if self.handler_timeout > 0 else None
        started = time.monotonic()
        try:
            prepared = self._prepare(projection, event, limit)
        except Exception as exc:  # noqa: BLE001 - turned into event.failed by the caller
            raise _HandlerFailed(exc) from exc
        spent = time.monotonic() - started

        with self.log.transaction() as connection:
            if expected is not None and self.log.checkpoint(projection.name, connection) != expected:
                raise _CheckpointMoved
            try:
                if limit is None:
                    emitted = projection.apply(connection, event, prepared)
                else:
                    emitted = self._apply_within(connection, projection, event, prepared, limit, spent)
            except Exception as exc:  # noqa: BLE001 - the transaction rolls back; the caller records it
                raise _HandlerFailed(exc) from exc
            replaying = expected is None or event.position <= self.log.replay_until(projection.name, connection)
            if not replaying:
                self.log.append_in(connection, self._within_depth(projection, event, emitted))
            if expected is not None:
                self.log.set_checkpoint(connection, projection.name, event.position)

    @staticmethod
    def _prepare(projection: Projection, event: StoredEvent, limit: float | None) -> Any:
        """Return ``projection.prepare(event)``, giving up after ``limit`` seconds when there is a limit."""
        if limit is None:
            return projection.prepare(event)
        if getattr(projection, "prepare_inline", False):
            started = time.monotonic()
            prepared = projection.prepare(event)
            if time.monotonic() - started > limit:
                raise _timeout(projection, event, "prepare", limit)
            return prepared
        finished, prepared = _PREPARE_THREADS.call(projection.prepare, event, limit)
        if not finished:
            raise _timeout(projection, event, "prepare", limit)
        return prepared

    @staticmethod
    def _apply_within(
        connection: sqlite3.Connection,
        projection: Projection,
        event: StoredEvent,
        prepared: Any,
        limit: float,
        spent: float,
    ) -> list[dict[str, Any]]:
        """Run ``projection.apply`` with what is left of ``limit`` after ``spent`` seconds of ``prepare``.

        Its SQL is interrupted at the deadline. Past the deadline, whatever ``apply``
        returned or raised becomes a timeout, and the caller rolls the transaction back.
        """
        deadline = time.monotonic() + limit - spent
        try:
            with sql_deadline(connection, deadline):
                emitted = projection.apply(connection, event, prepared)
        except Exception as exc:
            if time.monotonic() > deadline:
                raise _timeout(projection, event, "apply", limit) from exc
            raise
        if time.monotonic() > deadline:
            raise _timeout(projection, event, "apply", limit)
        return emitted

    @staticmethod
    def _within_depth(projection: Projection, cause: StoredEvent, emitted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop emitted events past the causation depth limit, recording one ``event.failed`` instead."""
        if causation_depth(cause) + 1 <= MAX_CAUSATION_DEPTH:
            return emitted
        refused = sorted({str(event["type"]) for event in emitted})
        if not refused:
            return []
        logger.warning(
            "consumer %s: causation depth limit %d reached on %s (%s); dropped %s",
            projection.name, MAX_CAUSATION_DEPTH, cause.id, cause.type, ", ".join(refused),
        )
        return [make_event(
            "event.failed",
            {"reason": "causation depth limit", "event_id": cause.id, "event_type": cause.type,
             "handler": projection.name, "refused_type": refused[0], "depth": causation_depth(cause) + 1,
             "max_depth": MAX_CAUSATION_DEPTH},
            source=f"consumer:{projection.name}", cause=cause,
        )]

    def _record_failure(
        self, projection: Projection, event: StoredEvent, expected: int, error: BaseException, attempt: int, *, park: bool
    ) -> None:
        error_type = type(error).__name__
        outcome = "parked" if park else "will retry"
        logger.error(
            "consumer %s failed on event %s (%s), attempt %d of %d: %s: %s; %s",
            projection.name, event.id, event.type, attempt, MAX_ATTEMPTS, error_type, error, outcome,
        )
        failure = make_event(
            "event.failed",
            {"event_id": event.id, "event_type": event.type, "handler": projection.name, "error_type": error_type,
             "error": f"{error_type}: {error}", "attempt": attempt, "parked": park},
            source=f"consumer:{projection.name}",
            cause=event,
        )
        with self.log.transaction() as connection:
            if self.log.checkpoint(projection.name, connection) != expected:
                raise _CheckpointMoved
            replaying = event.position <= self.log.replay_until(projection.name, connection)
            if event.type != "event.failed" and not replaying:
                self.log.append_in(connection, [failure])
            if park:
                self.log.park(connection, projection.name, event, f"{error_type}: {error}", attempt)
                self.log.set_checkpoint(connection, projection.name, event.position)

    # -- parked events and replay ----------------------------------------------------------

    def replay_parked(self, projection: Projection, event_id: str) -> bool:
        """Handle one parked event again; return True when it succeeded and left the parked list.

        Raises:
            NotFoundError: ``event_id`` is not parked for this projection.
        """
        from mcp_server.errors import NotFoundError

        entries = [entry for entry in self.log.parked(projection.name) if entry["event_id"] == event_id]
        event = self.log.get(event_id)
        if not entries or event is None:
            raise NotFoundError(
                f"event {event_id!r} is not parked for {projection.name!r}; list them with 'eventsync parked'"
            )
        with self._lock(projection.name):
            try:
                self._attempt(projection, event, None)
            except _HandlerFailed as failure:
                attempts = int(entries[0]["attempts"]) + 1  # type: ignore[call-overload]
                logger.error("replay of parked event %s for %s failed again: %s", event_id, projection.name,
                             failure.error)
                with self.log.transaction() as connection:
                    self.log.park(connection, projection.name, event, f"{type(failure.error).__name__}: "
                                  f"{failure.error}", attempts)
                return False
            with self.log.transaction() as connection:
                self.log.unpark(connection, projection.name, event_id)
        return True

    def replay(self, projection: Projection, start: int, end: int) -> int:
        """Apply events in positions ``(start, end]`` to ``projection`` again; return how many.

        The checkpoint does not move and emitted events are discarded, so a
        replay only repairs state; it suits deterministic, idempotent projections.
        """
        replayed = 0
        with self._lock(projection.name):
            position = start
            while position < end:
                batch = [e for e in self.log.read_after(position, limit=CATCH_UP_BATCH, types=projection.subscriptions)
                         if e.position <= end]
                if not batch:
                    break
                for event in batch:
                    try:
                        self._attempt(projection, event, None)
                        replayed += 1
                    except _HandlerFailed as failure:
                        logger.error("replay of %s for %s failed: %s", event.id, projection.name, failure.error)
                position = batch[-1].position
        return replayed

    # -- statistics ------------------------------------------------------------------------

    def statistics(self, projection: Projection) -> ConsumerStatistics:
        """Return the checkpoint, lag, failure and parked counts of ``projection``."""
        checkpoint = self.log.checkpoint(projection.name)
        failed = self.log.query(
            EventFilter(types=("event.failed",), payload_equals=(("handler", projection.name),)), limit=1
        ).total
        holder = self.log.leases().get(projection.name)
        return ConsumerStatistics(
            name=projection.name,
            checkpoint=checkpoint,
            lag=max(0, self.log.head() - checkpoint),
            failed=failed,
            parked=len(self.log.parked(projection.name)),
            handled=self._handled.get(projection.name, 0),
            coalesced=self._coalesced.get(projection.name, 0),
            lease_holder=holder[0] if holder and holder[1] > time.time() else None,
        )
