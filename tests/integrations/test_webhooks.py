"""Webhook delivery against real HTTP servers on 127.0.0.1: signatures, retries, failures, redirects, restarts."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import pytest

from conftest import Project
from mcp_server.integrations.webhooks import WebhookDispatcher
from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter, StoredEvent

pytestmark = pytest.mark.anyio

SECRET = "test-webhook-secret"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Received:
    """One request a test server received."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Endpoint:
    """A local HTTP server whose responses a test scripts."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    failures_left: int = 0
    redirect_to: str | None = None
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


def _handler(endpoint: Endpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            endpoint.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            endpoint.arrived.set()
            if endpoint.hold is not None:
                endpoint.hold.wait(timeout=30)
            if endpoint.redirect_to is not None and self.path == "/hook":
                self._answer(307, {"Location": endpoint.redirect_to})
            elif endpoint.failures_left > 0:
                endpoint.failures_left -= 1
                self._answer(500)
            else:
                self._answer(204)

        def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@pytest.fixture
def endpoints() -> Iterator[Callable[[], Endpoint]]:
    started: list[Endpoint] = []

    def start() -> Endpoint:
        server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
        endpoint = Endpoint(server)
        server.RequestHandlerClass = _handler(endpoint)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        started.append(endpoint)
        return endpoint

    yield start
    for endpoint in started:
        if endpoint.hold is not None:
            endpoint.hold.set()
        endpoint.server.shutdown()
        endpoint.server.server_close()


def _configure(project: Project, url: str, *, events: str = '["file.saved"]', attempts: int = 3) -> None:
    (project.root / ".eventsync").mkdir(exist_ok=True)
    (project.root / ".eventsync" / "config.toml").write_text(
        f'[[webhooks]]\nurl = "{url}"\nevents = {events}\nsecret_env = "TEST_WEBHOOK_SECRET"\n'
        f"max_attempts = {attempts}\nbackoff_seconds = 0.01\nbackoff_max_seconds = 0.05\ntimeout_seconds = 5\n",
        encoding="utf-8",
    )


def _save(runtime: Runtime, path: str = "src/a.py") -> StoredEvent:
    stored = runtime.emit("file.saved", {"path": path}, source="test")
    assert stored is not None
    runtime.catch_up()
    return stored


def _pending(runtime: Runtime) -> int:
    return int(runtime.log.connection.execute("SELECT count(*) FROM webhook_deliveries").fetchone()[0])


def _failures(runtime: Runtime) -> list[StoredEvent]:
    return runtime.log.query(EventFilter(types=("integration.failed",)), limit=50).events


@asynccontextmanager
async def _dispatching(runtime: Runtime, environ: dict[str, str] | None = None) -> AsyncIterator[None]:
    settings = runtime.config.settings
    dispatcher = WebhookDispatcher(runtime.log, settings.webhooks, environ=environ or {"TEST_WEBHOOK_SECRET": SECRET})
    async with anyio.create_task_group() as group:
        await group.start(dispatcher.run)
        yield
        group.cancel_scope.cancel()


async def _until(condition: Callable[[], bool]) -> None:
    with anyio.fail_after(20):
        while not await anyio.to_thread.run_sync(condition):
            await anyio.sleep(0.01)


async def test_delivery_signed(project: Project, endpoints: Callable[[], Endpoint]) -> None:
    endpoint = endpoints()
    _configure(project, endpoint.url + "/hook")
    runtime = project.runtime()
    stored = _save(runtime)

    async with _dispatching(runtime):
        await _until(lambda: _pending(runtime) == 0)

    request = endpoint.requests[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert len(endpoint.requests) == 1
    assert request.path == "/hook"
    assert request.headers["x-eventsync-signature"] == expected
    assert request.headers["x-eventsync-event-id"] == stored.id
    assert request.headers["x-eventsync-event-type"] == "file.saved"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body)["payload"] == {"path": "src/a.py"}
    assert json.loads(request.body)["id"] == stored.id
    runtime.close()


async def test_only_matching_events_sent(project: Project, endpoints: Callable[[], Endpoint]) -> None:
    endpoint = endpoints()
    _configure(project, endpoint.url + "/hook", events='["task.>"]')
    runtime = project.runtime()
    _save(runtime)
    runtime.emit("task.noted", {"id": "t1"}, source="test")
    runtime.catch_up()

    async with _dispatching(runtime):
        await _until(lambda: _pending(runtime) == 0)

    assert [request.headers["x-eventsync-event-type"] for request in endpoint.requests] == ["task.noted"]
    runtime.close()


async def test_retries_until_success(project: Project, endpoints: Callable[[], Endpoint]) -> None:
    endpoint = endpoints()
    endpoint.failures_left = 2
    _configure(project, endpoint.url + "/hook", attempts=3)
    runtime = project.runtime()
    stored = _save(runtime)

    async with _dispatching(runtime):
        await _until(lambda: _pending(runtime) == 0)

    assert len(endpoint.requests) == 3
    assert {request.headers["x-eventsync-event-id"] for request in endpoint.requests} == {stored.id}
    assert len({request.body for request in endpoint.requests}) == 1
    assert _failures(runtime) == []
    runtime.close()


async def test_failed_after_last_attempt(project: Project, endpoints: Callable[[], Endpoint]) -> None:
    endpoint = endpoints()
    endpoint.failures_left = 100
    _configure(project, endpoint.url + "/hook", attempts=3)
    runtime = project.runtime()
    stored = _save(runtime)

    async with _dispatching(runtime):
        await _until(lambda: len(_failures(runtime)) == 1)

    failure = _failures(runtime)[0]
    assert len(endpoint.requests) == 3
    assert failure.payload["url"] == endpoint.url + "/hook"
    assert failure.payload["event_id"] == stored.id
    assert failure.payload["attempts"] == 3
    assert failure.payload["last_error"] == "HTTP 500"
    assert failure.metadata["causation_id"] == stored.id
    assert _pending(runtime) == 0
    runtime.close()


async def test_redirect_elsewhere_refused(project: Project, endpoints: Callable[[], Endpoint]) -> None:
    configured, elsewhere = endpoints(), endpoints()
    configured.redirect_to = elsewhere.url + "/stolen"
    _configure(project, configured.url + "/hook", attempts=2)
    runtime = project.runtime()
    _save(runtime)

    async with _dispatching(runtime):
        await _until(lambda: len(_failures(runtime)) == 1)

    assert elsewhere.requests == []
    assert len(configured.requests) == 2
    assert "redirect to" in _failures(runtime)[0].payload["last_error"]
    assert "refused" in _failures(runtime)[0].payload["last_error"]
    runtime.close()


async def test_same_origin_redirect_followed(project: Project, endpoints: Callable[[], Endpoint]) -> None:
    endpoint = endpoints()
    endpoint.redirect_to = "/moved"
    _configure(project, endpoint.url + "/hook")
    runtime = project.runtime()
    _save(runtime)

    async with _dispatching(runtime):
        await _until(lambda: _pending(runtime) == 0)

    assert [request.path for request in endpoint.requests] == ["/hook", "/moved"]
    assert "x-eventsync-signature" in endpoint.requests[1].headers
    assert _failures(runtime) == []
    runtime.close()


async def test_missing_secret_sends_nothing(project: Project, endpoints: Callable[[], Endpoint]) -> None:
    endpoint = endpoints()
    _configure(project, endpoint.url + "/hook", attempts=1)
    runtime = project.runtime()
    _save(runtime)

    async with _dispatching(runtime, environ={"OTHER": "x"}):
        await _until(lambda: len(_failures(runtime)) == 1)

    assert endpoint.requests == []
    assert "TEST_WEBHOOK_SECRET is not set" in _failures(runtime)[0].payload["last_error"]
    runtime.close()


async def test_dead_endpoint_does_not_block_catch_up(project: Project, endpoints: Callable[[], Endpoint]) -> None:
    endpoint = endpoints()
    endpoint.hold = threading.Event()
    _configure(project, endpoint.url + "/hook")
    runtime = project.runtime()
    project.write("src/b.py", "# @touchpoint beta\n")
    _save(runtime, "src/a.py")

    async with _dispatching(runtime):
        await anyio.to_thread.run_sync(lambda: endpoint.arrived.wait(20))
        _save(runtime, "src/b.py")
        head = runtime.log.head()
        checkpoints = runtime.log.checkpoints()
        touchpoints, _ = runtime.list_touchpoints()
        endpoint.hold.set()
        await _until(lambda: _pending(runtime) == 0)

    assert checkpoints["touchpoints"] == head
    assert checkpoints["webhooks"] == head
    assert [row.name for row in touchpoints] == ["beta"]
    assert len(endpoint.requests) == 2
    runtime.close()


async def test_delivery_survives_restart(project: Project, endpoints: Callable[[], Endpoint]) -> None:
    endpoint = endpoints()
    _configure(project, endpoint.url + "/hook")
    runtime = project.runtime()
    stored = _save(runtime)
    runtime.close()

    restarted = project.runtime()
    restarted.catch_up()
    async with _dispatching(restarted):
        await _until(lambda: _pending(restarted) == 0)

    assert [request.headers["x-eventsync-event-id"] for request in endpoint.requests] == [stored.id]
    restarted.close()


async def test_history_never_delivered(project: Project, endpoints: Callable[[], Endpoint]) -> None:
    endpoint = endpoints()
    before = project.runtime()
    _save(before, "src/old.py")
    before.close()

    _configure(project, endpoint.url + "/hook")
    runtime = project.runtime()
    runtime.catch_up()
    queued_after_config = _pending(runtime)
    stored = _save(runtime, "src/new.py")
    runtime.rebuild("webhooks")

    async with _dispatching(runtime):
        await _until(lambda: _pending(runtime) == 0)

    assert queued_after_config == 0
    assert [request.headers["x-eventsync-event-id"] for request in endpoint.requests] == [stored.id]
    runtime.close()
