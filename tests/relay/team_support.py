"""Support for the team-mode tests: NATS servers of their own, eventsync machines, and bounded waits.

Servers started here listen on free loopback ports with store folders under
the test's ``tmp_path``; the system server on 4222 is only ever read from.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import git
import nats
from conftest import Project, require_service
from nats.js.api import StreamConfig

from mcp_server.install import init_project
from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter
from mcp_server.team import Relay, TeamSettings, jetstream_available

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
SYSTEM_NATS = "nats://127.0.0.1:4222"


def require_system_nats() -> None:
    require_service("NATS JetStream on 127.0.0.1:4222", jetstream_available)


def require_nats_binary() -> None:
    require_service(f"the nats-server binary ({NATS_SERVER})", lambda: os.access(NATS_SERVER, os.X_OK))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unique_settings(servers: tuple[str, ...], machine_id: str, *, token: str, replicas: int = 1) -> TeamSettings:
    """Settings on a stream and subject prefix no other test uses."""
    return TeamSettings(
        servers=servers,
        project="shop",
        machine_id=machine_id,
        stream=f"EVENTSYNC-TEST-{token}",
        subject_prefix=f"test{token}",
        replicas=replicas,
    )


def new_token() -> str:
    return uuid.uuid4().hex[:10]


# -- servers -----------------------------------------------------------------------------


@dataclass
class NatsServer:
    """One nats-server process with JetStream, optionally a member of a cluster."""

    name: str
    folder: Path
    port: int = field(default_factory=free_port)
    cluster_port: int | None = None
    routes: tuple[int, ...] = ()
    config: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        store = self.folder / "store"
        store.mkdir(parents=True, exist_ok=True)
        command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store), "-n", self.name,
                   "-l", str(self.folder / "server.log")]
        if self.config:
            config_file = self.folder / "server.conf"
            config_file.write_text(self.config, encoding="utf-8")
            command += ["-c", str(config_file)]
        if self.cluster_port is not None:
            command += ["--cluster_name", "eventsync-test", "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                        "--routes", ",".join(f"nats://127.0.0.1:{port}" for port in self.routes)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def wait_ready(self, timeout: float = 20.0) -> None:
        with anyio.fail_after(timeout):
            while not await anyio.to_thread.run_sync(lambda: jetstream_available(port=self.port, timeout=0.5)):
                assert self.process is not None and self.process.poll() is None, f"nats-server {self.name} exited"
                await anyio.sleep(0.05)

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def make_cluster(folder: Path, size: int = 3) -> list[NatsServer]:
    """Return ``size`` cluster members (not started) routed to each other on loopback."""
    cluster_ports = [free_port() for _ in range(size)]
    return [
        NatsServer(
            name=f"node{index}",
            folder=folder / f"node{index}",
            cluster_port=cluster_ports[index],
            routes=tuple(port for other, port in enumerate(cluster_ports) if other != index),
        )
        for index in range(size)
    ]


async def wait_for_replicated_streams(urls: list[str], replicas: int, timeout: float = 40.0) -> None:
    """Wait until the cluster has elected its JetStream leader and can place a stream on ``replicas`` nodes."""
    name = f"READY-{new_token()}"
    with anyio.fail_after(timeout):
        while True:
            try:
                connection = await nats.connect(servers=urls, connect_timeout=2, max_reconnect_attempts=1)
            except (nats.errors.Error, OSError):
                await anyio.sleep(0.2)
                continue
            try:
                js = connection.jetstream(timeout=2)
                await js.add_stream(StreamConfig(name=name, subjects=[f"{name.lower()}.>"], num_replicas=replicas))
                await js.delete_stream(name)
                return
            except (nats.errors.Error, OSError):
                await anyio.sleep(0.2)
            finally:
                await connection.close()


async def stream_messages(url: str, settings: TeamSettings) -> list[tuple[int, dict[str, str], dict[str, Any]]]:
    """Return the stream sequence, headers and decoded body of every message in the settings' stream."""
    connection = await nats.connect(url)
    try:
        js = connection.jetstream(timeout=5)
        info = await js.stream_info(settings.stream)
        if info.state.messages == 0:
            return []
        found = []
        for sequence in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(settings.stream, sequence)
            found.append((sequence, dict(message.headers or {}), json.loads(message.data)))
        return found
    finally:
        await connection.close()


async def delete_stream(url: str, settings: TeamSettings) -> None:
    connection = await nats.connect(url)
    try:
        await connection.jetstream(timeout=5).delete_stream(settings.stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await connection.close()


# -- machines ----------------------------------------------------------------------------


@dataclass
class Machine:
    """One clone of the project with its own log, runtime and relay settings."""

    project: Project
    runtime: Runtime
    settings: TeamSettings

    @property
    def machine_id(self) -> str:
        return self.settings.machine_id

    def relay(self, **options: Any) -> Relay:
        return Relay(self.runtime.log, self.settings, prepare=self.runtime.ingest, **options)

    def count(self, event_type: str = ">", **payload: object) -> int:
        query = EventFilter(types=(event_type,), payload_equals=tuple(payload.items()))
        return self.runtime.query_events(query).total

    def ids(self, event_type: str = ">") -> list[str]:
        """Return the ids of every stored event of ``event_type``, in log order, duplicates kept."""
        return [event.id for event in self.runtime.log.iterate() if event_type == ">" or event.type == event_type]


def make_machines(tmp_path: Path, settings_a: TeamSettings, settings_b: TeamSettings) -> tuple[Machine, Machine]:
    """Return machine A (a new repository) and machine B (a clone of A), both with eventsync installed."""
    root_a = tmp_path / "machine-a"
    root_a.mkdir()
    repository = git.Repo.init(root_a)
    (root_a / "README.md").write_text("shop\n", encoding="utf-8")
    init_project(str(root_a))
    repository.index.add(["README.md"])
    repository.index.commit("Start the shop")

    root_b = tmp_path / "machine-b"
    git.Repo.clone_from(str(root_a), str(root_b))
    init_project(str(root_b))

    machines = []
    for root, settings in ((root_a, settings_a), (root_b, settings_b)):
        project = Project(root.resolve())
        machines.append(Machine(project, Runtime(str(project.root), environ={}), settings))
    return machines[0], machines[1]


def write_payload(project: Project, relative: str, tool_use_id: str, session: str = "s-team") -> dict[str, Any]:
    """A PostToolUse payload for a Write of ``relative``, as Claude Code sends it."""
    path = str(project.root / relative)
    return {"session_id": session, "hook_event_name": "PostToolUse", "tool_name": "Write",
            "tool_input": {"file_path": path}, "tool_response": {"type": "create", "filePath": path},
            "tool_use_id": tool_use_id}


# -- running relays and waiting ------------------------------------------------------------


class RunningRelay:
    """A relay task that a test can stop and start again, like a restarted process."""

    def __init__(self, machine: Machine, group: anyio.abc.TaskGroup) -> None:
        self.machine = machine
        self._group = group
        self._scope: anyio.CancelScope | None = None
        self.relay: Relay | None = None

    async def start(self) -> Relay:
        self.relay = self.machine.relay()
        scope = anyio.CancelScope()
        self._scope = scope
        relay = self.relay

        async def run(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await relay.run(task_status=task_status)

        await self._group.start(run)
        return relay

    def stop(self) -> None:
        if self._scope is not None:
            self._scope.cancel()


async def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> None:
    """Poll ``condition`` in a worker thread every 50 ms until it holds; fail after ``timeout`` seconds."""
    try:
        with anyio.fail_after(timeout):
            while not await anyio.to_thread.run_sync(condition):
                await anyio.sleep(0.05)
    except TimeoutError as exc:
        raise AssertionError(f"timed out after {timeout:g} s waiting until {message}") from exc


def outbox_done(machine: Machine, relay: Relay) -> bool:
    log = machine.runtime.log
    machine.runtime.ingest()
    return log.checkpoint(relay.outbox_checkpoint) == log.head()


async def consumer_drained(urls: list[str], settings: TeamSettings) -> bool:
    """Return whether this machine's consumer has nothing left to deliver and nothing unacknowledged.

    An unanswered request (a cluster electing a new leader) counts as not drained.
    """
    connection = await nats.connect(servers=urls)
    try:
        info = await connection.jetstream(timeout=2).consumer_info(settings.stream, settings.durable_name)
    except nats.errors.Error:
        return False
    finally:
        await connection.close()
    return info.num_pending == 0 and info.num_ack_pending == 0


async def wait_settled(urls: list[str], machines: list[tuple[Machine, Relay]], timeout: float = 30.0) -> None:
    """Wait until every outbox has published its whole log and every consumer has acknowledged the whole stream."""
    with anyio.fail_after(timeout):
        while True:
            outboxes = await anyio.to_thread.run_sync(
                lambda: all(relay.statistics.connected and outbox_done(machine, relay) for machine, relay in machines)
            )
            if outboxes and all([await consumer_drained(urls, machine.settings) for machine, _ in machines]):
                return
            await anyio.sleep(0.05)
