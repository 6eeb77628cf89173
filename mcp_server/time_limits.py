"""Time limits for synchronous work, which Python cannot cancel.

Python cannot stop a running thread. A limit on synchronous code can stop
waiting for a call that runs in another thread (:class:`WorkerThreads`),
interrupt the SQL a connection runs (:class:`sql_deadline`), or notice the
overrun once the code has returned. The durable consumers use all three
(see :mod:`mcp_server.consumers`).
"""

from __future__ import annotations

import contextvars
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["PROGRESS_STEPS", "Calls", "WorkerThreads", "sql_deadline"]

PROGRESS_STEPS = 10_000
"""SQLite virtual-machine instructions between two deadline checks. Each check is one Python call."""


class Calls:
    """Calls of one function on a list of arguments, made one after another in a worker thread.

    Only the thread that submitted them may call :meth:`wait` and :meth:`abandon`.
    """

    def __init__(self, owner: WorkerThreads, function: Callable[[Any], Any], arguments: Sequence[Any]) -> None:
        self._owner = owner
        self._function = function
        self._arguments = arguments
        # Like anyio.to_thread, run in a copy of the caller's context, so context variables carry over.
        self._context = contextvars.copy_context()
        self._done = threading.Lock()
        self._done.acquire()
        self._finished = False
        self._abandoned = False
        self._jobs: queue.SimpleQueue[Calls | None] | None = None
        self.results: list[tuple[Any, float]] = []
        """Return value and seconds taken of each call that finished, in argument order."""
        self.error: BaseException | None = None
        """What the call after the last result raised. The calls after it were not made."""
        self.current: tuple[int, float] = (0, time.monotonic())
        """Index of the argument being handled, and the ``time.monotonic()`` at which its call started."""

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the calls to end, and return whether they did.

        The calls end when every argument is handled or one call raises.
        """
        if self._finished:
            return True
        if not self._done.acquire(timeout=max(timeout, 0.0)):
            return False
        self._finished = True
        assert self._jobs is not None
        self._owner._release(self._jobs)
        return True

    def abandon(self) -> None:
        """Stop waiting: the thread makes no further call and exits when the current one returns."""
        if self._finished or self._abandoned:
            return
        self._abandoned = True
        assert self._jobs is not None
        self._jobs.put(None)

    def _run(self) -> None:
        try:
            for index, argument in enumerate(self._arguments):
                if self._abandoned:
                    return
                started = time.monotonic()
                self.current = (index, started)
                try:
                    value = self._context.run(self._function, argument)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller, which decides
                    self.error = exc
                    return
                self.results.append((value, time.monotonic() - started))
        finally:
            self._done.release()


def _serve(jobs: queue.SimpleQueue[Calls | None]) -> None:
    while True:
        calls = jobs.get()
        if calls is None:
            return
        calls._run()


class WorkerThreads:
    """Daemon threads that run calls for callers that wait a limited time.

    Idle threads are reused, so there are only as many as callers once waited
    on at the same time. A thread whose call overran is abandoned: it exits
    when the call returns, and until then it is one more thread. Daemon threads
    do not delay the interpreter's exit.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._idle: list[queue.SimpleQueue[Calls | None]] = []
        self._idle_lock = threading.Lock()
        self._started = 0

    def submit(self, function: Callable[[Any], Any], arguments: Sequence[Any]) -> Calls:
        """Start calling ``function`` on each of ``arguments`` in order in a worker thread.

        One hand-off to the thread covers every call. A hand-off and the wait for
        its result took about 20 µs on an idle 2-vCPU virtual machine, and up to
        a few milliseconds when other processes kept both CPUs busy.
        """
        calls = Calls(self, function, arguments)
        with self._idle_lock:
            jobs = self._idle.pop() if self._idle else self._start()
        calls._jobs = jobs
        jobs.put(calls)
        return calls

    def call(self, function: Callable[[Any], Any], argument: Any, timeout: float) -> tuple[bool, Any]:
        """Run ``function(argument)`` in a worker thread and return ``(True, result)``, or ``(False, None)`` on timeout.

        Whatever ``function`` raises within ``timeout`` seconds is raised here.
        After a timeout the call runs on in its thread and its outcome is dropped.
        """
        calls = self.submit(function, [argument])
        if not calls.wait(timeout):
            calls.abandon()
            return False, None
        if calls.error is not None:
            raise calls.error
        return True, calls.results[0][0]

    def _start(self) -> queue.SimpleQueue[Calls | None]:
        jobs: queue.SimpleQueue[Calls | None] = queue.SimpleQueue()
        self._started += 1
        threading.Thread(target=_serve, args=(jobs,), name=f"{self._name}-{self._started}", daemon=True).start()
        return jobs

    def _release(self, jobs: queue.SimpleQueue[Calls | None]) -> None:
        with self._idle_lock:
            self._idle.append(jobs)


class sql_deadline:  # lower case like contextlib.closing, because it is used like a function
    """Interrupt every statement ``connection`` runs in the block once ``time.monotonic()`` passes ``deadline``.

    An interrupted statement raises ``sqlite3.OperationalError("interrupted")``.
    After an interrupted write SQLite rolls back the whole open transaction by
    itself (SQLite 3.40, see ``sqlite3_interrupt``). A statement shorter than
    :data:`PROGRESS_STEPS` instructions is never checked, so it still runs after the deadline.
    It is a class because ``@contextmanager`` cost 0.57 µs more per block (0.84
    against 0.27 µs, ``timeit``), and a consumer enters one block per event.
    """

    __slots__ = ("_connection", "_deadline")

    def __init__(self, connection: sqlite3.Connection, deadline: float) -> None:
        self._connection = connection
        self._deadline = deadline

    def __enter__(self) -> None:
        self._connection.set_progress_handler(self._past_deadline, PROGRESS_STEPS)

    def __exit__(self, *exc_info: object) -> None:
        self._connection.set_progress_handler(None, 0)

    def _past_deadline(self) -> bool:
        return time.monotonic() > self._deadline
