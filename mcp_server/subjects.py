"""Event type names and subscription patterns, with NATS subject semantics.

An event type is dotted lower-case segments (``file.saved``,
``project.progress.updated``). A pattern is a type in which a segment may be
``*`` (exactly one segment) or, as the last segment, ``>`` (one or more
segments): ``file.*`` matches ``file.saved``; ``task.>`` matches
``task.assigned`` and ``task.a.b``; ``>`` matches everything. These are the
rules of NATS subjects, so the same pattern works on the JetStream relay.

Standard library only, because the store (imported by the CLI) uses it.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["is_valid_type", "matches", "validate_pattern", "validate_type"]

_SEGMENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
MAX_TYPE_LENGTH = 128
"""Longest accepted type name; JetStream subjects add a prefix to it."""


def _valid_segment(segment: str) -> bool:
    return bool(segment) and segment[0].isalpha() and all(char in _SEGMENT_CHARS for char in segment)


@lru_cache(maxsize=4096)
def is_valid_type(event_type: str) -> bool:
    """Return whether ``event_type`` is dotted lower-case segments."""
    if not event_type or len(event_type) > MAX_TYPE_LENGTH:
        return False
    return all(_valid_segment(segment) for segment in event_type.split("."))


def validate_type(event_type: str) -> str:
    """Return ``event_type`` unchanged if valid.

    Raises:
        InvalidEventError: it is not dotted lower-case segments.
    """
    if not is_valid_type(event_type):
        from mcp_server.errors import InvalidEventError

        raise InvalidEventError(
            f"invalid event type {event_type!r}: use dotted lower-case segments of letters, digits, "
            "'_' or '-', each starting with a letter, for example 'file.saved'"
        )
    return event_type


def validate_pattern(pattern: str) -> str:
    """Return ``pattern`` unchanged if valid.

    Raises:
        InvalidEventError: a segment is neither a name, ``*`` nor a final ``>``.
    """
    segments = pattern.split(".")
    for index, segment in enumerate(segments):
        if segment == "*" or (segment == ">" and index == len(segments) - 1) or _valid_segment(segment):
            continue
        from mcp_server.errors import InvalidEventError

        raise InvalidEventError(
            f"invalid type pattern {pattern!r} at segment {segment!r}: use names, '*' for one segment "
            "or a final '>' for the rest, for example 'file.*' or 'task.>'"
        )
    return pattern


@lru_cache(maxsize=4096)
def matches(pattern: str, event_type: str) -> bool:
    """Return whether ``event_type`` matches ``pattern``."""
    wanted = pattern.split(".")
    actual = event_type.split(".")
    for index, segment in enumerate(wanted):
        if segment == ">":
            return len(actual) > index
        if index >= len(actual):
            return False
        if segment != "*" and segment != actual[index]:
            return False
    return len(actual) == len(wanted)
