"""Publishing a batch of events to JetStream, pipelined, with a reply for every message.

Every message is sent at once on one connection, in order, each with its own
reply subject under one inbox. JetStream replies to each with an
acknowledgement or an error. nats-py's ``publish_async`` is not used because
in nats-py 2.16 an error reply (a stream limit, a full disk) raises inside the
client's reply handler and never reaches the waiting future, so the caller
sees only a timeout. Here every error is returned with its code and description.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import anyio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import APIError

from mcp_server import jsoncodec

__all__ = ["Ack", "BatchResult", "OutgoingMessage", "PendingBatch", "publish_batch", "send_batch"]


class Ack(NamedTuple):
    """JetStream's acknowledgement of one message: its stream sequence, and whether it was a duplicate."""

    sequence: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to publish."""

    subject: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """JetStream's replies to one batch, in the order the messages were sent.

    Each entry of ``acks`` is an :class:`Ack`, an error text, or None where no
    reply arrived in time.
    """

    acks: list[Ack | str | None]

    @property
    def complete(self) -> bool:
        """Whether every message was acknowledged."""
        return all(isinstance(ack, Ack) for ack in self.acks)

    @property
    def acknowledged(self) -> int:
        """How many messages were acknowledged."""
        return sum(isinstance(ack, Ack) for ack in self.acks)

    def first_failure(self) -> str:
        """Describe the first message that was not acknowledged."""
        for index, ack in enumerate(self.acks):
            if ack is None:
                return f"message {index + 1} of {len(self.acks)} got no reply in time"
            if isinstance(ack, str):
                return f"message {index + 1} of {len(self.acks)} was rejected: {ack}"
        return "every message was acknowledged"


def _answer(reply: Msg) -> Ack | str:
    status = (reply.headers or {}).get("Status")
    if status == "503":
        return "no stream stores this subject (no responders)"
    try:
        response = jsoncodec.loads(reply.data.decode("utf-8"))
    except (UnicodeDecodeError, jsoncodec.JSONDecodeFailure):
        return f"unreadable reply {reply.data[:80]!r}"
    if not isinstance(response, dict):
        return f"unexpected reply {response!r}"
    if "error" in response:
        try:
            APIError.from_error(response["error"])
        except APIError as error:
            return str(error)
    return Ack(int(response.get("seq", 0)), bool(response.get("duplicate", False)))


class PendingBatch:
    """A batch whose messages are sent and whose replies are still arriving."""

    def __init__(self, size: int) -> None:
        self._acks: list[Ack | str | None] = [None] * size
        self._outstanding = size
        self._finished = asyncio.Event()
        self._subscription: Subscription | None = None
        if size == 0:
            self._finished.set()

    async def _on_reply(self, reply: Msg) -> None:
        index = int(reply.subject.rsplit(".", 1)[1])
        if self._acks[index] is not None:
            return
        self._acks[index] = _answer(reply)
        self._outstanding -= 1
        if self._outstanding == 0:
            self._finished.set()

    @property
    def done(self) -> bool:
        """Whether every message has a reply."""
        return self._finished.is_set()

    async def wait(self, timeout: float) -> BatchResult:
        """Wait up to ``timeout`` seconds for the remaining replies, stop listening, and return them all."""
        try:
            with anyio.move_on_after(timeout):
                await self._finished.wait()
        finally:
            if self._subscription is not None:
                with anyio.CancelScope(shield=True):
                    await self._subscription.unsubscribe()
        return BatchResult(list(self._acks))


async def send_batch(connection: Client, messages: Sequence[OutgoingMessage]) -> PendingBatch:
    """Send ``messages`` in order without waiting for their answers.

    Raises:
        nats.errors.Error: the connection failed while sending.
    """
    pending = PendingBatch(len(messages))
    if not messages:
        return pending
    inbox = connection.new_inbox()
    pending._subscription = await connection.subscribe(f"{inbox}.*", cb=pending._on_reply)
    for index, message in enumerate(messages):
        await connection.publish(message.subject, message.body, reply=f"{inbox}.{index}", headers=message.headers)
    return pending


async def publish_batch(connection: Client, messages: Sequence[OutgoingMessage], *, timeout: float) -> BatchResult:
    """Publish ``messages`` in order and wait up to ``timeout`` seconds for every reply.

    Raises:
        nats.errors.Error: the connection failed while sending.
    """
    pending = await send_batch(connection, messages)
    return await pending.wait(timeout)
