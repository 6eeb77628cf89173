"""Event timestamps: UTC, ISO 8601, microsecond precision, ``Z`` suffix.

Every event carries one of these strings. They sort lexically in time order,
which the log's time-range queries rely on. Standard library only, without
``datetime``, because the capture hook imports this module.
"""

from __future__ import annotations

import time

__all__ = ["utc_timestamp"]


def utc_timestamp(time_ns: int | None = None) -> str:
    """Return ``time_ns`` (default: now) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    nanoseconds = time.time_ns() if time_ns is None else time_ns
    seconds, remainder = divmod(nanoseconds, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{remainder // 1000:06d}Z"
