"""Event identifiers.

Two kinds of id, both formatted as RFC 9562 UUID strings:

* :func:`new_event_id` returns a UUIDv7, whose leading 48 bits are the Unix
  time in milliseconds, so ids sort roughly by creation time.
* :func:`derived_event_id` returns a UUIDv8 built from a SHA-256 of a key, so
  the same captured change (a hook delivered twice, a retry, the hook set in
  both plugin and project settings) always gets the same id and the log, which
  is idempotent on id, stores it once.

Standard library only: the capture hook imports this module.
"""

from __future__ import annotations

import os
import time

__all__ = ["derived_event_id", "new_event_id"]


def _format(value: int) -> str:
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def new_event_id() -> str:
    """Return a new time-ordered UUIDv7 string."""
    millis = time.time_ns() // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (random_bits >> 68) << 64 & ((1 << 76) - (1 << 64))
    value |= 0b10 << 62
    value |= random_bits & ((1 << 62) - 1)
    return _format(value)


def derived_event_id(*parts: str) -> str:
    """Return a UUIDv8 string that depends only on ``parts``."""
    try:
        from _sha256 import sha256  # Python 3.11
    except ImportError:  # Python 3.12 and later
        from _sha2 import sha256  # type: ignore[no-redef]

    digest = sha256("\x1f".join(parts).encode("utf-8", "surrogateescape")).digest()
    value = int.from_bytes(digest[:16], "big")
    value &= ~(0xF << 76)
    value |= 0x8 << 76
    value &= ~(0b11 << 62)
    value |= 0b10 << 62
    return _format(value)
