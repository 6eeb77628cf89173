"""Team settings from the environment, and events as JetStream messages."""

from __future__ import annotations

import socket
from pathlib import Path

import git
import pytest

from mcp_server.errors import ConfigurationError, InvalidEventError
from mcp_server.events import make_event
from mcp_server.team import Credentials, TeamSettings, jetstream_available
from mcp_server.team.settings import ACK_WAIT, BACKOFF, MAX_DELIVER, redact_url
from mcp_server.team.wire import decode_event, encode_event


def _repository(path: Path, remote: str | None) -> Path:
    repository = git.Repo.init(path)
    if remote is not None:
        repository.create_remote("origin", remote)
    return path


def test_settings_from_environment(tmp_path: Path) -> None:
    env = {
        "EVENTSYNC_NATS_URL": "nats://a.example:4222, nats://b.example:4222",
        "EVENTSYNC_PROJECT": "checkout",
        "EVENTSYNC_MACHINE_ID": "laptop-1",
        "EVENTSYNC_NATS_STREAM": "ACME",
        "EVENTSYNC_NATS_REPLICAS": "3",
    }

    settings = TeamSettings.from_environ(env, root=str(tmp_path), data_dir=str(tmp_path / ".eventsync"))

    assert settings.servers == ("nats://a.example:4222", "nats://b.example:4222")
    assert settings.subject("file.saved") == "eventsync.checkout.file.saved"
    assert settings.project_filter == "eventsync.checkout.>"
    assert settings.durable_name == "eventsync-checkout-laptop-1"
    assert settings.stream_config().num_replicas == 3


def test_overrides_win_over_environment(tmp_path: Path) -> None:
    env = {"EVENTSYNC_NATS_URL": "nats://a.example:4222", "EVENTSYNC_PROJECT": "checkout", "EVENTSYNC_MACHINE_ID": "m1"}

    settings = TeamSettings.from_environ(
        env, root=str(tmp_path), data_dir=str(tmp_path), servers=["nats://c.example:4222"], project="billing"
    )

    assert settings.servers == ("nats://c.example:4222",)
    assert settings.project == "billing"


def test_project_key_from_origin_remote(tmp_path: Path) -> None:
    root = _repository(tmp_path / "clone", "git@github.com:acme/Checkout.Service.git")

    settings = TeamSettings.from_environ({"EVENTSYNC_NATS_URL": "nats://127.0.0.1:4222"}, root=str(root), data_dir=str(tmp_path))

    assert settings.project == "checkout-service"


def test_missing_project_key_explained(tmp_path: Path) -> None:
    root = _repository(tmp_path / "local", None)

    with pytest.raises(ConfigurationError, match="no git remote named 'origin'; set EVENTSYNC_PROJECT"):
        TeamSettings.from_environ({"EVENTSYNC_NATS_URL": "nats://127.0.0.1:4222"}, root=str(root), data_dir=str(tmp_path))


def test_missing_server_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no NATS server given; set EVENTSYNC_NATS_URL"):
        TeamSettings.from_environ({"EVENTSYNC_PROJECT": "shop"}, root=str(tmp_path), data_dir=str(tmp_path))


def test_machine_id_generated_once(tmp_path: Path) -> None:
    env = {"EVENTSYNC_NATS_URL": "nats://127.0.0.1:4222", "EVENTSYNC_PROJECT": "shop"}

    first = TeamSettings.from_environ(env, root=str(tmp_path), data_dir=str(tmp_path / "data"))
    second = TeamSettings.from_environ(env, root=str(tmp_path), data_dir=str(tmp_path / "data"))

    assert first.machine_id == second.machine_id
    assert (tmp_path / "data" / "machine-id").read_text().strip() == first.machine_id


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("project", "Shop.Main", "invalid project key 'Shop.Main'"),
        ("machine_id", "my machine", "invalid machine id 'my machine'"),
        ("stream", "EVENTS.ALL", "invalid stream name 'EVENTS.ALL'"),
        ("servers", ("http://127.0.0.1:4222",), "invalid NATS URL 'http://127.0.0.1:4222'"),
        ("replicas", 2, "invalid replica count 2"),
    ],
)
def test_invalid_values_rejected(field: str, value: object, message: str) -> None:
    valid = TeamSettings(servers=("nats://127.0.0.1:4222",), project="shop", machine_id="m1")

    with pytest.raises(ConfigurationError, match=message):
        valid.with_changes(**{field: value})


def test_credentials_never_shown(tmp_path: Path) -> None:
    creds = tmp_path / "user.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\n")
    env = {"EVENTSYNC_NATS_CREDS": str(creds), "EVENTSYNC_NATS_USER": "relay", "EVENTSYNC_NATS_PASSWORD": "s3cret",
           "EVENTSYNC_NATS_TOKEN": "t0ken"}
    settings = TeamSettings(servers=("nats://relay:s3cret@127.0.0.1:4222",), project="shop", machine_id="m1",
                            credentials=Credentials.from_environ(env))

    options = settings.credentials.connect_options()

    assert options == {"user_credentials": str(creds), "user": "relay", "password": "s3cret", "token": "t0ken"}
    assert "s3cret" not in repr(settings)
    assert "t0ken" not in repr(settings)
    assert "s3cret" not in settings.describe()
    assert redact_url("nats://relay:s3cret@host:4222") == "nats://***@host:4222"


def test_missing_creds_file_explained(tmp_path: Path) -> None:
    credentials = Credentials.from_environ({"EVENTSYNC_NATS_CREDS": str(tmp_path / "absent.creds")})

    with pytest.raises(ConfigurationError, match="EVENTSYNC_NATS_CREDS names .*absent.creds', which is not a file"):
        credentials.connect_options()


def test_consumer_settings_explicit() -> None:
    config = TeamSettings(servers=("nats://127.0.0.1:4222",), project="shop", machine_id="m1").consumer_config()

    assert config.ack_wait == ACK_WAIT == BACKOFF[0]
    assert config.backoff == list(BACKOFF)
    assert config.max_deliver == MAX_DELIVER
    assert config.max_deliver > len(BACKOFF)
    assert config.max_ack_pending == 1024
    assert config.filter_subject == "eventsync.shop.>"


def test_event_round_trips_with_origin() -> None:
    event = make_event("file.saved", {"path": "src/a.py"}, source="hook", session_id="s1")

    body, headers = encode_event(event, "machine-a")
    decoded = decode_event(body, headers)

    assert headers == {"Nats-Msg-Id": event["id"]}
    assert decoded["payload"] == {"path": "src/a.py"}
    assert decoded["metadata"] == {**event["metadata"], "origin": "machine-a"}


def test_existing_origin_kept() -> None:
    event = make_event("note.added", {}, source="test")
    event["metadata"]["origin"] = "machine-z"

    body, headers = encode_event(event, "machine-a")

    assert decode_event(body, headers)["metadata"]["origin"] == "machine-z"


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        (b"\xff", {}, "not UTF-8 JSON"),
        (b"[1, 2]", {}, "is a JSON list, not an event object"),
        (b'{"id": "x", "type": "Bad Type", "timestamp": "t", "source": "s"}', {}, "invalid event type 'Bad Type'"),
    ],
)
def test_invalid_messages_rejected(body: bytes, headers: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidEventError, match=message):
        decode_event(body, headers)


def test_message_id_must_match_event() -> None:
    body, _ = encode_event(make_event("note.added", {}, source="test"), "machine-a")

    with pytest.raises(InvalidEventError, match="message id 'other' differs from the event id"):
        decode_event(body, {"Nats-Msg-Id": "other"})


def test_probe_on_closed_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]

        assert jetstream_available(port=port, timeout=0.5) is False
