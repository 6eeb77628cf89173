"""Exceptions raised by eventsync.

Every error the package raises on purpose derives from :class:`EventsyncError`,
so a caller can catch one type. Errors from ``sqlite3`` and the file system are
translated at the boundary that meets them (``raise ... from exc``)::

    EventsyncError
    ├── ConfigurationError        project root, data folder or settings unusable
    ├── InvalidEventError         an event or event type fails validation
    ├── StoreError                the event log could not be read or written
    │   └── StoreLockedError      another process held the write lock too long
    ├── PathOutsideProjectError   a path resolves outside the project root
    ├── NotFoundError             a named thing (touchpoint, event) does not exist
    ├── ClosedError               an object was used after close()
    └── HandlerTimeoutError       a durable consumer ran past its time limit (also a TimeoutError)
"""

from __future__ import annotations

__all__ = [
    "ClosedError",
    "ConfigurationError",
    "EventsyncError",
    "HandlerTimeoutError",
    "InvalidEventError",
    "NotFoundError",
    "PathOutsideProjectError",
    "StoreError",
    "StoreLockedError",
]


class EventsyncError(Exception):
    """Base class of every error eventsync raises on purpose."""


class ConfigurationError(EventsyncError):
    """Raised when the project root, data folder or a setting cannot be used."""


class InvalidEventError(EventsyncError):
    """Raised when an event, its type name or its payload fails validation."""


class StoreError(EventsyncError):
    """Raised when the event log cannot be opened, read or written."""


class StoreLockedError(StoreError):
    """Raised when another process held the log's write lock past the busy timeout."""


class PathOutsideProjectError(EventsyncError):
    """Raised when a path resolves to a location outside the project root."""


class NotFoundError(EventsyncError):
    """Raised when a requested touchpoint, event or consumer does not exist."""


class ClosedError(EventsyncError):
    """Raised when an event log, bus or runtime is used after it was closed."""


class HandlerTimeoutError(EventsyncError, TimeoutError):
    """Raised when a durable consumer's ``prepare`` or ``apply`` runs past its time limit."""
