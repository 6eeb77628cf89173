"""Team-mode settings: where the JetStream stream is, who this machine is, and how it connects.

:class:`TeamSettings` is read from the environment (``EVENTSYNC_NATS_*``,
``EVENTSYNC_PROJECT``, ``EVENTSYNC_MACHINE_ID``) and from command-line
overrides. Credentials come only from the environment and are never logged or
written to a file. The module also fixes the JetStream stream and consumer
settings that the relay (:mod:`mcp_server.team.relay`) and the JetStream event
log (:mod:`mcp_server.store.nats`) create; every value is chosen on purpose and
its docstring says why, because the server defaults redeliver forever and keep
only two minutes of message ids.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from mcp_server.errors import ConfigurationError

__all__ = [
    "ACK_WAIT",
    "BACKOFF",
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT_PREFIX",
    "DUPLICATE_WINDOW",
    "MAX_ACK_PENDING",
    "MAX_DELIVER",
    "STREAM_MAX_AGE",
    "Credentials",
    "TeamSettings",
    "jetstream_available",
    "redact_url",
]

DEFAULT_STREAM = "EVENTSYNC"
"""Stream name when ``EVENTSYNC_NATS_STREAM`` is unset; one stream per organisation contains every project."""

DEFAULT_SUBJECT_PREFIX = "eventsync"
"""First subject token; events go to ``<prefix>.<project key>.<event type>``."""

STREAM_STORAGE = StorageType.FILE
"""File storage: events must survive a restart of the NATS server; memory storage loses them."""

STREAM_RETENTION = RetentionPolicy.LIMITS
"""Limits retention: every machine's consumer reads every event, and a machine that joins later reads history.

Interest retention would drop events no consumer was bound to yet, and
work-queue retention would hand each event to one machine only.
"""

STREAM_MAX_AGE = 30 * 24 * 3600.0
"""Seconds an event stays in the stream (30 days).

Bounds disk use without a byte limit that one busy project could exhaust for
the others. A machine offline longer than this misses the older events of
other machines; its own events stay in its local log.
"""

DUPLICATE_WINDOW = 3600.0
"""Seconds JetStream remembers each ``Nats-Msg-Id`` (one hour; the server default is two minutes).

The relay republishes an unacknowledged event within seconds (ack timeout
:data:`mcp_server.team.relay.ACK_TIMEOUT`, reconnect backoff capped at 30 s),
and a restarted relay resumes from its outbox checkpoint as soon as it runs, so
an hour covers a retry across a NATS or relay restart. JetStream keeps the ids
of the whole window in memory, so the window is not made longer. When an
outage outlasts it, a republished event may be stored twice in the stream.
Every machine's log is idempotent on event id and still stores it once.
"""

ACK_WAIT = 10.0
"""Seconds a delivered event may stay unacknowledged before JetStream redelivers it.

The relay acknowledges after its local SQLite commit and, while a commit
takes longer (waiting for the write lock), reports progress every third of
this interval, so only a relay that died or lost its connection lets it run
out. It is the delay before such a relay's batch is delivered again.
"""

BACKOFF = (ACK_WAIT, 30.0, 120.0, 600.0)
"""Redelivery delays in seconds after the first, second, third and later unacknowledged deliveries.

A relay that crashed gets its batch back ten seconds later. A message that
keeps crashing it is retried less and less often instead of every
:data:`ACK_WAIT`. JetStream uses the first value in place of AckWait.
"""

MAX_DELIVER = 10
"""Deliveries of one message before JetStream stops offering it to this machine (the default, -1, is forever).

A message is delivered again only when the relay fetched it and did not
acknowledge it: the relay crashed, lost its connection, or stopped in the
middle of a batch. Messages the relay cannot decode are terminated at once
rather than retried. With :data:`BACKOFF`, ten deliveries span about an hour
(10 s + 30 s + 2 min + 6 x 10 min). A message past the limit stays in the
stream, and ``eventsync relay --resync`` reads the stream again and applies
whatever the local log is missing.
"""

MAX_ACK_PENDING = 1024
"""Delivered but unacknowledged messages the server allows per consumer.

The relay processes one fetch batch (256) at a time. Four batches of room
cover redeliveries after a restart and still bound what a stuck relay pins.
"""

_PROJECT_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_MACHINE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_STREAM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SUBJECT_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MACHINE_ID_FILE = "machine-id"
"""File in the data folder holding the machine id generated on first use."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """How to authenticate to NATS; every field comes from the environment and none is shown by ``repr``."""

    creds_file: str | None = field(default=None, repr=False)
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    ca_file: str | None = field(default=None, repr=False)

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Credentials:
        """Read ``EVENTSYNC_NATS_CREDS``, ``_USER``, ``_PASSWORD``, ``_TOKEN`` and ``_CA_FILE``."""

        def value(name: str) -> str | None:
            return env.get(name) or None

        return cls(
            creds_file=value("EVENTSYNC_NATS_CREDS"),
            user=value("EVENTSYNC_NATS_USER"),
            password=value("EVENTSYNC_NATS_PASSWORD"),
            token=value("EVENTSYNC_NATS_TOKEN"),
            ca_file=value("EVENTSYNC_NATS_CA_FILE"),
        )

    def connect_options(self) -> dict[str, Any]:
        """Return the ``nats.connect`` keyword arguments for these credentials.

        Raises:
            ConfigurationError: a named file is missing, or the password is set without a user.
        """
        options: dict[str, Any] = {}
        for name, path in (("EVENTSYNC_NATS_CREDS", self.creds_file), ("EVENTSYNC_NATS_CA_FILE", self.ca_file)):
            if path is not None and not os.path.isfile(path):
                raise ConfigurationError(f"{name} names {path!r}, which is not a file; fix the path or unset it")
        if self.creds_file:
            options["user_credentials"] = self.creds_file
        if self.password and not self.user:
            raise ConfigurationError("EVENTSYNC_NATS_PASSWORD is set but EVENTSYNC_NATS_USER is not; set both")
        if self.user:
            options["user"] = self.user
            options["password"] = self.password or ""
        if self.token:
            options["token"] = self.token
        if self.ca_file:
            options["tls"] = ssl.create_default_context(cafile=self.ca_file)
        return options


@dataclass(frozen=True, slots=True, repr=False)
class TeamSettings:
    """Where this machine's events go on JetStream and under which names.

    ``servers`` are NATS URLs, several for a cluster. ``project`` is the
    project key shared by every clone of one project. ``machine_id`` names
    this local log and marks the origin of the events it publishes.
    """

    servers: tuple[str, ...]
    project: str
    machine_id: str
    stream: str = DEFAULT_STREAM
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    replicas: int = 1
    max_age: float = STREAM_MAX_AGE
    duplicate_window: float = DUPLICATE_WINDOW
    credentials: Credentials = field(default_factory=Credentials)

    def __post_init__(self) -> None:
        self.validate()

    def __repr__(self) -> str:
        return f"TeamSettings({self.describe()} project={self.project})"

    def validate(self) -> None:
        """Check every name against what NATS accepts.

        Raises:
            ConfigurationError: a server URL, the project key, machine id, stream, prefix or replica count is invalid.
        """
        if not self.servers:
            raise ConfigurationError("no NATS server given; set EVENTSYNC_NATS_URL, e.g. nats://127.0.0.1:4222")
        for server in self.servers:
            if urlsplit(server).scheme not in ("nats", "tls", "ws", "wss"):
                raise ConfigurationError(
                    f"invalid NATS URL {redact_url(server)!r}: use nats://host:port (tls:// for TLS), comma-separated"
                )
        checks = (
            ("project key", "EVENTSYNC_PROJECT", self.project, _PROJECT_KEY, "lower-case letters, digits, '_' or '-'"),
            ("machine id", "EVENTSYNC_MACHINE_ID", self.machine_id, _MACHINE_ID, "letters, digits, '_' or '-'"),
            ("stream name", "EVENTSYNC_NATS_STREAM", self.stream, _STREAM_NAME, "letters, digits, '_' or '-'"),
            ("subject prefix", "EVENTSYNC_NATS_SUBJECT_PREFIX", self.subject_prefix, _SUBJECT_TOKEN,
             "one subject token of letters, digits, '_' or '-'"),
        )
        for label, variable, value, pattern, allowed in checks:
            if not pattern.fullmatch(value):
                raise ConfigurationError(f"invalid {label} {value!r} (from {variable}): use 1 to 64 {allowed}")
        if self.replicas not in (1, 3, 5):
            raise ConfigurationError(f"invalid replica count {self.replicas!r}: use 1, 3 or 5 (an odd cluster quorum)")

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_environ(
        cls, env: Mapping[str, str], *, root: str, data_dir: str, **overrides: Any
    ) -> TeamSettings:
        """Build settings from ``env``; ``overrides`` (from command-line flags) win over it.

        The project key defaults to the name of the ``origin`` remote's
        repository, so every clone agrees without configuration. The machine
        id defaults to one generated once and kept in ``data_dir``.

        Raises:
            ConfigurationError: no server is configured, no project key can be found, or a value is invalid.
        """
        explicit = {key: value for key, value in overrides.items() if value is not None}
        servers = explicit.pop("servers", None) or _split_servers(env.get("EVENTSYNC_NATS_URL", ""))
        project = explicit.pop("project", None) or env.get("EVENTSYNC_PROJECT") or _project_key_from_git(root)
        machine_id = (
            explicit.pop("machine_id", None) or env.get("EVENTSYNC_MACHINE_ID") or _stored_machine_id(data_dir)
        )
        replicas = explicit.pop("replicas", None) or _int_from_env(env, "EVENTSYNC_NATS_REPLICAS", 1)
        return cls(
            servers=tuple(servers),
            project=project,
            machine_id=machine_id,
            stream=explicit.pop("stream", None) or env.get("EVENTSYNC_NATS_STREAM") or DEFAULT_STREAM,
            subject_prefix=env.get("EVENTSYNC_NATS_SUBJECT_PREFIX") or DEFAULT_SUBJECT_PREFIX,
            replicas=replicas,
            credentials=Credentials.from_environ(env),
            **explicit,
        )

    def with_changes(self, **changes: Any) -> TeamSettings:
        """Return a copy with ``changes`` applied and validated."""
        return replace(self, **changes)

    # -- names ---------------------------------------------------------------------------

    def subject(self, event_type: str) -> str:
        """Return the subject events of ``event_type`` are published on."""
        return f"{self.subject_prefix}.{self.project}.{event_type}"

    @property
    def project_filter(self) -> str:
        """The subject filter matching every event of this project."""
        return f"{self.subject_prefix}.{self.project}.>"

    @property
    def durable_name(self) -> str:
        """The durable consumer through which this machine reads the project's events."""
        return f"eventsync-{self.project}-{self.machine_id}"

    @property
    def checkpoint_bucket(self) -> str:
        """The key-value bucket holding checkpoints of the JetStream event log."""
        return f"{self.stream}-{self.project}-checkpoints"

    # -- JetStream configuration ---------------------------------------------------------

    def stream_config(self) -> StreamConfig:
        """Return the configuration of the stream the relay creates when it is missing."""
        return StreamConfig(
            name=self.stream,
            description="eventsync events of every project: <prefix>.<project key>.<event type>",
            subjects=[f"{self.subject_prefix}.>"],
            retention=STREAM_RETENTION,
            storage=STREAM_STORAGE,
            num_replicas=self.replicas,
            max_age=self.max_age,
            duplicate_window=self.duplicate_window,
            discard=DiscardPolicy.OLD,
        )

    def consumer_config(self) -> ConsumerConfig:
        """Return the configuration of this machine's durable pull consumer."""
        return ConsumerConfig(
            durable_name=self.durable_name,
            description=f"eventsync relay of machine {self.machine_id} for project {self.project}",
            filter_subject=self.project_filter,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT,
            backoff=list(BACKOFF),
            max_deliver=MAX_DELIVER,
            max_ack_pending=MAX_ACK_PENDING,
        )

    def connect_options(self) -> dict[str, Any]:
        """Return ``nats.connect`` keyword arguments: servers, client name and credentials."""
        return {
            "servers": list(self.servers),
            "name": f"eventsync {self.machine_id}",
            **self.credentials.connect_options(),
        }

    def describe(self) -> str:
        """Return a one-line summary for logs, with any password in the URLs masked."""
        servers = ",".join(redact_url(server) for server in self.servers)
        return (
            f"servers={servers} stream={self.stream} subjects={self.project_filter} "
            f"machine={self.machine_id} replicas={self.replicas}"
        )


def redact_url(url: str) -> str:
    """Return ``url`` with any user information replaced by ``***``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def jetstream_available(host: str = "127.0.0.1", port: int = 4222, *, timeout: float = 1.0) -> bool:
    """Return whether a NATS server with JetStream enabled listens on ``host:port``.

    Reads only the ``INFO`` line the server sends on connect, so it needs no
    client library and no credentials.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.settimeout(timeout)
            banner = connection.recv(4096)
    except OSError:
        return False
    return banner.startswith(b"INFO ") and b'"jetstream":true' in banner


# -- defaults from the project -----------------------------------------------------------


def _split_servers(value: str) -> list[str]:
    return [server.strip() for server in value.split(",") if server.strip()]


def _int_from_env(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a whole number, got {text!r}") from exc


def _project_key_from_git(root: str) -> str:
    """Return the ``origin`` remote's repository name as a project key.

    Raises:
        ConfigurationError: the project has no ``origin`` remote.
    """
    import git  # gitpython; imported here because only team mode needs it

    try:
        url = git.Repo(root).remotes.origin.url
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, AttributeError, IndexError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot derive a project key for {root!r}: it has no git remote named 'origin'; "
            "set EVENTSYNC_PROJECT to a key every clone of this project shares, e.g. 'checkout-service'"
        ) from exc
    name = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    name = name.removesuffix(".git").lower()
    key = re.sub(r"[^a-z0-9_-]+", "-", name).strip("-_")
    if not key:
        raise ConfigurationError(f"cannot derive a project key from remote URL {redact_url(url)!r}; set EVENTSYNC_PROJECT")
    return key[:64]


def _stored_machine_id(data_dir: str) -> str:
    """Return the machine id kept in ``data_dir``, generating and storing one on first use.

    Raises:
        ConfigurationError: the file cannot be read or written.
    """
    path = os.path.join(data_dir, MACHINE_ID_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            stored = handle.read().strip()
        if stored:
            return stored
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigurationError(f"cannot read the machine id from {path!r}: {exc}; set EVENTSYNC_MACHINE_ID") from exc

    machine_id = f"{socket.gethostname().split('.')[0][:40]}-{uuid.uuid4().hex[:8]}"
    machine_id = re.sub(r"[^A-Za-z0-9_-]+", "-", machine_id).strip("-_") or uuid.uuid4().hex[:12]
    try:
        os.makedirs(data_dir, exist_ok=True)
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(machine_id + "\n")
    except FileExistsError:
        return _stored_machine_id(data_dir)
    except OSError as exc:
        raise ConfigurationError(f"cannot store the machine id in {path!r}: {exc}; set EVENTSYNC_MACHINE_ID") from exc
    return machine_id
