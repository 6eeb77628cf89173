"""Webhooks: events matching configured patterns are POSTed as signed JSON to configured URLs.

Delivery has two halves, so a slow or dead endpoint never holds up the
modules' catch-up:

* :class:`WebhookOutbox` is a durable consumer named ``webhooks``. For each
  matching event it inserts one row per webhook into the
  ``webhook_deliveries`` table, in the transaction that advances its
  checkpoint. That is a local insert, as fast as any other projection.
* :class:`WebhookDispatcher` runs in the MCP server, one task per webhook.
  It claims due rows (with a lease, so two servers never send the same row
  at once), POSTs them, deletes them on a 2xx response, and otherwise schedules
  a retry with exponential backoff. After the last attempt it deletes the
  row and appends ``integration.failed`` (url, event id, attempts, last
  error) in one transaction. The rows are the dispatcher's checkpoint: after a
  restart it resumes with whatever is still due. Delivery is at least once; a
  receiver de-duplicates on ``X-Eventsync-Event-Id``.

Each request carries ``X-Eventsync-Signature: sha256=<hex>``, the
HMAC-SHA256 of the body under the secret read from the environment variable
named by ``secret_env`` (the secret is never stored in a file or the log),
and ``X-Eventsync-Event-Id`` / ``X-Eventsync-Event-Type`` headers.

Only configured addresses are contacted: proxies from the environment are
ignored, and a redirect is followed only to the same scheme, host and port
as the configured URL; any other redirect fails the attempt.

The outbox is not rebuilt from history: events older than the webhook
configuration (or replayed by ``eventsync rebuild webhooks``) are never sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import httpx2
from anyio.abc import TaskStatus

from mcp_server import __version__, ids, subjects
from mcp_server.config import WebhookConfig
from mcp_server.errors import EventsyncError
from mcp_server.events import make_event
from mcp_server.schema.registry import SchemaRegistry
from mcp_server.store.base import StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog

__all__ = ["DeliveryOutcome", "WebhookDispatcher", "WebhookOutbox", "sign"]

logger = logging.getLogger(__name__)

INTEGRATION_FAILED = "integration.failed"

SIGNATURE_HEADER = "X-Eventsync-Signature"

MAX_REDIRECTS = 3
"""Same-origin redirects followed per attempt; more fail the attempt."""

POLL_INTERVAL = 0.2
"""Maximum wait, in seconds, before a webhook task looks for new due deliveries."""

LEASE_MARGIN = 30.0
"""Seconds added to an attempt's time limit for its lease; a crashed server's claim expires after that."""

MAX_ERROR_CHARS = 500
"""Maximum length of the error text kept per delivery and put in integration.failed."""

ERROR_PAUSE = 1.0
"""Seconds a webhook task waits after the log could not be read or written, before it tries again."""


def sign(secret: str, body: bytes) -> str:
    """Return the ``X-Eventsync-Signature`` value for ``body``: ``sha256=`` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _create_table(connection: sqlite3.Connection) -> None:
    connection.execute(
        """CREATE TABLE IF NOT EXISTS webhook_deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            url TEXT NOT NULL,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            body BLOB NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            lease_until REAL NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '',
            UNIQUE (url, event_id)
        )"""
    )
    connection.execute(
        "CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (url, next_attempt_at)"
    )


# -- enqueueing: the durable consumer -------------------------------------------------------


class WebhookOutbox:
    """Durable consumer that queues one delivery per matching event and webhook."""

    name = "webhooks"
    version = 1
    depends_on: tuple[str, ...] = ()
    prepare_inline = True  # prepare does no I/O; see mcp_server.consumers.Projection
    emits = (INTEGRATION_FAILED,)

    def __init__(self, log: SQLiteEventLog, webhooks: Sequence[WebhookConfig], registry: SchemaRegistry) -> None:
        self._log = log
        self.webhooks = tuple(webhooks)
        self._registry = registry
        self.subscriptions = tuple(sorted({pattern for webhook in webhooks for pattern in webhook.events}))

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the outbox table."""
        _create_table(connection)

    def drop(self, connection: sqlite3.Connection) -> None:
        """Keep the outbox: pending deliveries are not derived state and must survive a rebuild."""

    def prepare(self, event: StoredEvent) -> None:
        """Nothing to prepare."""
        return None

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: None) -> list[dict[str, Any]]:
        """Queue ``event`` for every webhook whose patterns match it, unless history is being replayed."""
        if event.position <= self._log.replay_until(self.name, connection):
            return []
        current = self._registry.upcast(event)
        body = json.dumps(current.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        now = time.time()
        for webhook in self.webhooks:
            if not any(subjects.matches(pattern, event.type) for pattern in webhook.events):
                continue
            if event.type == INTEGRATION_FAILED and event.payload.get("url") == webhook.url:
                continue  # a dead endpoint must not be sent news of its own failures, one per failure, forever
            connection.execute(
                "INSERT OR IGNORE INTO webhook_deliveries (url, event_id, event_type, body, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (webhook.url, event.id, event.type, body, now),
            )
        return []


# -- sending: the dispatcher ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Delivery:
    id: int
    url: str
    event_id: str
    event_type: str
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """Result of one attempt: ``error`` is empty on success."""

    error: str = ""
    status: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the endpoint accepted the event."""
        return not self.error


class WebhookDispatcher:
    """Sends queued deliveries, one task per webhook; run it with ``task_group.start(dispatcher.run)``."""

    def __init__(
        self,
        log: SQLiteEventLog,
        webhooks: Sequence[WebhookConfig],
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Send the deliveries of ``webhooks``; secrets come from ``environ`` (default: the process environment)."""
        self.log = log
        self.webhooks = tuple(webhooks)
        self._environ = os.environ if environ is None else environ
        with log.transaction() as connection:
            _create_table(connection)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled."""
        async with httpx2.AsyncClient(trust_env=False, follow_redirects=False) as client:
            async with anyio.create_task_group() as group:
                for webhook in self.webhooks:
                    group.start_soon(self._work, client, webhook)
                task_status.started()
                logger.info("webhook dispatcher started for %d webhook(s)", len(self.webhooks))

    async def _work(self, client: httpx2.AsyncClient, webhook: WebhookConfig) -> None:
        while True:
            try:
                await self._step(client, webhook)
            except EventsyncError as exc:
                # Contained on purpose: a locked log must not end deliveries. A claimed row's
                # lease expires, so the row is sent again later.
                logger.error("webhook %s: %s; retrying in %g s", webhook.url, exc, ERROR_PAUSE)
                await anyio.sleep(ERROR_PAUSE)

    async def _step(self, client: httpx2.AsyncClient, webhook: WebhookConfig) -> None:
        delivery, wait = await anyio.to_thread.run_sync(self._claim, webhook)
        if delivery is None:
            await anyio.sleep(min(wait, POLL_INTERVAL))
            return
        outcome = await self.attempt(client, webhook, delivery.body, delivery.event_id, delivery.event_type)
        await anyio.to_thread.run_sync(self._record, webhook, delivery, outcome)

    # -- the outbox ----------------------------------------------------------------------

    def _claim(self, webhook: WebhookConfig) -> tuple[_Delivery | None, float]:
        """Lease the next due delivery of ``webhook``; return it, or None and the seconds until one is due."""
        now = time.time()
        with self.log.transaction() as connection:
            row = connection.execute(
                "SELECT id, url, event_id, event_type, body, attempts FROM webhook_deliveries "
                "WHERE url = ? AND next_attempt_at <= ? AND lease_until < ? ORDER BY next_attempt_at, id LIMIT 1",
                (webhook.url, now, now),
            ).fetchone()
            if row is None:
                upcoming = connection.execute(
                    "SELECT min(max(next_attempt_at, lease_until)) FROM webhook_deliveries WHERE url = ?",
                    (webhook.url,),
                ).fetchone()[0]
                return None, max(0.0, float(upcoming) - now) if upcoming is not None else POLL_INTERVAL
            connection.execute(
                "UPDATE webhook_deliveries SET lease_until = ? WHERE id = ?",
                (now + webhook.timeout_seconds * (MAX_REDIRECTS + 1) + LEASE_MARGIN, row[0]),
            )
        return _Delivery(int(row[0]), str(row[1]), str(row[2]), str(row[3]), bytes(row[4]), int(row[5])), 0.0

    def _record(self, webhook: WebhookConfig, delivery: _Delivery, outcome: DeliveryOutcome) -> None:
        attempts = delivery.attempts + 1
        with self.log.transaction() as connection:
            if outcome.ok:
                connection.execute("DELETE FROM webhook_deliveries WHERE id = ?", (delivery.id,))
                logger.debug("delivered %s %s to %s", delivery.event_type, delivery.event_id, webhook.url)
                return
            if attempts >= webhook.max_attempts:
                connection.execute("DELETE FROM webhook_deliveries WHERE id = ?", (delivery.id,))
                self.log.append_in(connection, [self._failure(webhook, delivery, attempts, outcome)])
                logger.error(
                    "webhook %s: gave up on event %s (%s) after %d attempts: %s",
                    webhook.url, delivery.event_id, delivery.event_type, attempts, outcome.error,
                )
                return
            delay = min(webhook.backoff_seconds * 2 ** (attempts - 1), webhook.backoff_max_seconds)
            connection.execute(
                "UPDATE webhook_deliveries SET attempts = ?, next_attempt_at = ?, lease_until = 0, last_error = ? "
                "WHERE id = ?",
                (attempts, time.time() + delay, outcome.error, delivery.id),
            )
        logger.warning(
            "webhook %s: attempt %d of %d for event %s failed: %s; retrying in %.3g s",
            webhook.url, attempts, webhook.max_attempts, delivery.event_id, outcome.error, delay,
        )

    def _failure(
        self, webhook: WebhookConfig, delivery: _Delivery, attempts: int, outcome: DeliveryOutcome
    ) -> dict[str, Any]:
        cause = self.log.get(delivery.event_id)
        payload = {
            "url": webhook.url,
            "event_id": delivery.event_id,
            "event_type": delivery.event_type,
            "attempts": attempts,
            "last_error": outcome.error,
            "status": outcome.status,
        }
        event_id = ids.derived_event_id(INTEGRATION_FAILED, webhook.url, delivery.event_id, str(delivery.id))
        return make_event(INTEGRATION_FAILED, payload, source="module:webhooks", cause=cause, event_id=event_id)

    # -- one attempt -----------------------------------------------------------------------

    def _headers(self, webhook: WebhookConfig, body: bytes, event_id: str, event_type: str) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"eventsync/{__version__}",
            "X-Eventsync-Event-Id": event_id,
            "X-Eventsync-Event-Type": event_type,
        }
        if webhook.secret_env is not None:
            secret = self._environ.get(webhook.secret_env)
            if not secret:
                raise _MissingSecret(
                    f"environment variable {webhook.secret_env} is not set or empty, so the request cannot be "
                    "signed; export the secret in it for the MCP server and restart the server"
                )
            headers[SIGNATURE_HEADER] = sign(secret, body)
        return headers

    async def attempt(
        self, client: httpx2.AsyncClient, webhook: WebhookConfig, body: bytes, event_id: str, event_type: str
    ) -> DeliveryOutcome:
        """POST ``body`` to the webhook once, following same-origin redirects.

        Network, HTTP, URL and missing-secret errors come back as a failed outcome instead of being raised.
        """
        try:
            headers = self._headers(webhook, body, event_id, event_type)
        except _MissingSecret as exc:
            return DeliveryOutcome(error=str(exc))

        url = webhook.url
        allowed = _origin(webhook.url)
        for _ in range(MAX_REDIRECTS + 1):
            if _origin(url) != allowed:
                return DeliveryOutcome(error=f"refused to send to {url!r}, which is not the configured address")
            try:
                response = await client.post(url, content=body, headers=headers, timeout=webhook.timeout_seconds)
            except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
                return DeliveryOutcome(error=f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])
            if response.is_success:
                return DeliveryOutcome(status=response.status_code)
            if not response.is_redirect:
                text = response.text[:200].strip()
                detail = f": {text}" if text else ""
                return DeliveryOutcome(error=f"HTTP {response.status_code}{detail}"[:MAX_ERROR_CHARS],
                                       status=response.status_code)
            location = urljoin(url, response.headers.get("location", ""))
            if _origin(location) != allowed:
                return DeliveryOutcome(
                    error=f"HTTP {response.status_code} redirect to {location!r} refused: only the configured "
                    "scheme, host and port are contacted",
                    status=response.status_code,
                )
            url = location
        return DeliveryOutcome(error=f"more than {MAX_REDIRECTS} redirects from {webhook.url!r}")


class _MissingSecret(Exception):
    """The environment variable named by ``secret_env`` is not set."""
