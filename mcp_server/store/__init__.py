"""The event log: the single source of truth that every projection is rebuilt from.

``base`` defines the records and the query filter shared by every backend;
``sqlite`` is the embedded default. Both use only the standard library so the
CLI starts fast.
"""

from mcp_server.store.base import EventFilter, QueryPage, StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog

__all__ = ["EventFilter", "QueryPage", "SQLiteEventLog", "StoredEvent"]
