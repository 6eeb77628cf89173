"""Fetching from a durable pull consumer through one callback subscription.

nats-py's ``PullSubscription.fetch`` waits for each message with
``asyncio.wait_for``, which creates a task and a timer per message. A relay
also receives every event it published, so that cost applies to every local
event. In a cProfile run of one relay round of ``bench/bench_relay.py``
(20,000 events), the event loop ran 100,299 iterations with ``fetch`` and 537
with this reader. :class:`PullReader` sends JetStream's pull requests
(``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``) itself and collects
deliveries in a subscription callback.

A fetch first asks for whatever is waiting (``no_wait``); when nothing is, it
waits on the server for one message and then takes whatever else has arrived,
so it returns as soon as the first message is there.
"""

from __future__ import annotations

import asyncio

import anyio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from mcp_server import jsoncodec
from mcp_server.errors import StoreError

__all__ = ["ConsumerGoneError", "PullReader"]

REPLY_MARGIN = 1.0
"""Seconds the reader waits beyond a request's expiry for the server's closing status."""

_END_STATUSES = frozenset({"404", "408"})
"""Statuses ending a pull request normally: no messages (``no_wait``), or the request expired."""

_HEARTBEAT_STATUS = "100"


class ConsumerGoneError(StoreError):
    """Raised when JetStream ends a pull request because the consumer was deleted or lost its leader."""


class PullReader:
    """Issues pull requests for one durable consumer and returns the delivered messages."""

    def __init__(self, connection: Client, stream: str, consumer: str, *, api_prefix: str = "$JS.API") -> None:
        self._connection = connection
        self._request_subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = connection.new_inbox()
        self._subscription: Subscription | None = None
        self._received: list[Msg] = []
        self._requested = 0
        self._finished = asyncio.Event()
        self._conflict: str | None = None

    async def start(self) -> None:
        """Subscribe to the delivery inbox; call once before :meth:`fetch`."""
        self._subscription = await self._connection.subscribe(self._inbox, cb=self._on_delivery)

    async def stop(self) -> None:
        """Unsubscribe; a request still open on the server expires there."""
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None

    async def _on_delivery(self, message: Msg) -> None:
        status = (message.headers or {}).get("Status") if not message.data else None
        if status is None:
            self._received.append(message)
            if len(self._received) >= self._requested:
                self._finished.set()
            return
        if status == _HEARTBEAT_STATUS:
            return
        if status not in _END_STATUSES:
            self._conflict = f"{status} {(message.headers or {}).get('Description', '')}".strip()
        self._finished.set()

    async def _request(self, batch: int, *, wait: float | None) -> list[Msg]:
        """Send one pull request and return what it delivered once it ends.

        Raises:
            ConsumerGoneError: the server ended the request with a conflict (409).
        """
        # Messages that arrived after the previous request ended stay in _received and are returned now.
        self._requested, self._conflict = len(self._received) + batch, None
        self._finished.clear()
        request: dict[str, object] = {"batch": batch}
        if wait is None:
            request["no_wait"] = True
        else:
            request["expires"] = int(wait * 1_000_000_000)
        await self._connection.publish(self._request_subject, jsoncodec.dumps(request).encode(), reply=self._inbox)
        with anyio.move_on_after((wait or 0.0) + REPLY_MARGIN):
            await self._finished.wait()
        received, self._received = self._received, []
        if self._conflict is not None and not received:
            raise ConsumerGoneError(f"JetStream ended the pull request: {self._conflict}")
        return received

    async def fetch(self, batch: int, wait: float) -> list[Msg]:
        """Return up to ``batch`` messages, waiting up to ``wait`` seconds for the first one.

        Raises:
            ConsumerGoneError: the consumer was deleted or its leader changed.
        """
        waiting = await self._request(batch, wait=None)
        if waiting:
            return waiting
        first = await self._request(1, wait=wait)
        if not first or batch == 1:
            return first
        return first + await self._request(batch - 1, wait=None)
