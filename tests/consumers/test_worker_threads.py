"""Worker threads for calls with a time limit: results, errors, abandoned calls and their threads."""

from __future__ import annotations

import threading

import pytest

from mcp_server.time_limits import WorkerThreads


def _threads_named(prefix: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_calls_return_in_order() -> None:
    workers = WorkerThreads("test-order")

    calls = workers.submit(lambda n: n * n, [1, 2, 3])

    assert calls.wait(30) is True
    assert [value for value, _ in calls.results] == [1, 4, 9]
    assert all(seconds >= 0 for _, seconds in calls.results)
    assert calls.error is None


def test_error_stops_the_calls() -> None:
    workers = WorkerThreads("test-error")

    def raise_on_two(n: int) -> int:
        if n == 2:
            raise ValueError(f"bad value {n}")
        return n

    calls = workers.submit(raise_on_two, [1, 2, 3])

    assert calls.wait(30) is True
    assert [value for value, _ in calls.results] == [1]
    assert isinstance(calls.error, ValueError)
    assert str(calls.error) == "bad value 2"


def test_call_reraises_error() -> None:
    workers = WorkerThreads("test-reraise")

    with pytest.raises(KeyError, match="missing"):
        workers.call(lambda key: {}[key], "missing", 30)


def test_idle_thread_reused() -> None:
    workers = WorkerThreads("test-reuse")

    for n in range(5):
        assert workers.call(lambda value: value + 1, n, 30) == (True, n + 1)

    assert len(_threads_named("test-reuse")) == 1


def test_abandoned_thread_exits_after_call() -> None:
    workers = WorkerThreads("test-abandon")
    release = threading.Event()
    reached: list[int] = []

    def block(n: int) -> int:
        reached.append(n)
        if n == 1:
            release.wait(120)
        return n

    calls = workers.submit(block, [0, 1, 2])
    [thread] = _threads_named("test-abandon")
    try:
        while calls.current[0] < 1:
            calls.wait(0.01)
        assert calls.wait(0.05) is False
        calls.abandon()
    finally:
        release.set()
    thread.join(30)

    assert not thread.is_alive()
    assert reached == [0, 1]
    assert workers.call(lambda value: value, "after", 30) == (True, "after")


def test_call_times_out() -> None:
    workers = WorkerThreads("test-timeout")
    release = threading.Event()
    try:
        finished, value = workers.call(lambda _: release.wait(120), None, 0.05)
    finally:
        release.set()

    assert finished is False
    assert value is None
