"""eventsync: every change a Claude Code agent makes becomes a durable, typed event.

Importing this package stays cheap on purpose: the capture hook imports
sub-modules of it on every tool call, so nothing here may pull in pydantic,
mcp or sqlite3. The public API is listed in ``__all__`` and loaded on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "Event",
    "EventBus",
    "EventsyncError",
    "Runtime",
    "SQLiteEventLog",
    "__version__",
]

_LAZY = {
    "Event": "mcp_server.events",
    "EventBus": "mcp_server.bus",
    "EventsyncError": "mcp_server.errors",
    "Runtime": "mcp_server.runtime",
    "SQLiteEventLog": "mcp_server.store.sqlite",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'mcp_server' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
