"""Events as JetStream messages: the body, the header and the origin mark.

A message body is the event in wire form (``id``, ``type``, ``timestamp``,
``source``, ``payload``, ``metadata``) as compact JSON. The only header is
``Nats-Msg-Id``, the event id, so JetStream drops a republished event inside
its duplicate window. ``metadata.origin`` names the machine whose log the
event was first stored in. A relay applies only messages from other machines
and never publishes an event whose origin is another machine, so nothing
echoes back. The origin is not repeated in a header because nats-py parses
every header of every delivered message, which costs more than reading it
from the body (measured with ``bench/bench_relay.py``). Both the relay and the
JetStream event log use this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp_server import jsoncodec
from mcp_server.errors import InvalidEventError
from mcp_server.store.base import validate_event

__all__ = ["MSG_ID_HEADER", "UNKNOWN_ORIGIN", "decode_event", "encode_event", "origin_of", "parse_body"]

MSG_ID_HEADER = "Nats-Msg-Id"
"""JetStream's de-duplication header; it carries the event id."""

UNKNOWN_ORIGIN = "unknown"
"""Origin recorded for a message published without one (by a tool other than eventsync)."""

_WIRE_FIELDS = ("id", "type", "timestamp", "source", "payload", "metadata")


def origin_of(event: Mapping[str, Any]) -> str | None:
    """Return the machine recorded in ``metadata.origin``, or None for an event captured here."""
    metadata = event.get("metadata")
    if not isinstance(metadata, dict):
        return None
    origin = metadata.get("origin")
    return origin if isinstance(origin, str) and origin else None


def encode_event(event: Mapping[str, Any], origin: str) -> tuple[bytes, dict[str, str]]:
    """Return the message body and headers for ``event``, marking ``origin`` unless it already has one."""
    metadata = dict(event.get("metadata") or {})
    metadata.setdefault("origin", origin)
    body = {name: event.get(name) for name in _WIRE_FIELDS}
    body["payload"] = event.get("payload") or {}
    body["metadata"] = metadata
    return jsoncodec.dumps(body).encode("utf-8"), {MSG_ID_HEADER: str(event["id"])}


def parse_body(data: bytes) -> dict[str, Any]:
    """Return the JSON object in a message body, not yet validated as an event.

    Raises:
        InvalidEventError: the body is not UTF-8 JSON or not an object.
    """
    try:
        event = jsoncodec.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, jsoncodec.JSONDecodeFailure) as exc:
        raise InvalidEventError(f"message body is not UTF-8 JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise InvalidEventError(f"message body is a JSON {type(event).__name__}, not an event object")
    return event


def decode_event(data: bytes | dict[str, Any], headers: Mapping[str, str] | None) -> dict[str, Any]:
    """Return the event a message carries, in wire form, with ``metadata.origin`` set.

    ``data`` is the message body, or the object :func:`parse_body` returned for it.

    Raises:
        InvalidEventError: the body is not a valid event, or its id differs from ``Nats-Msg-Id``.
    """
    event = parse_body(data) if isinstance(data, bytes) else data
    validate_event(event)

    message_id = (headers or {}).get(MSG_ID_HEADER)
    if message_id is not None and message_id != event["id"]:
        raise InvalidEventError(f"message id {message_id!r} differs from the event id {event['id']!r} in its body")

    metadata = dict(event.get("metadata") or {})
    metadata["origin"] = origin_of(event) or UNKNOWN_ORIGIN
    return {**{name: event.get(name) for name in _WIRE_FIELDS}, "payload": event.get("payload") or {}, "metadata": metadata}
