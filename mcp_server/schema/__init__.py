"""Event payload schemas: models, versions, upcasters, the persisted registry and saved queries.

Modules register a pydantic model per event type they own (see
:mod:`.registry`). The runtime records the registry in the log and announces
changes with ``schema.updated`` (:mod:`.table`), then reacts to them
(:mod:`.reactions`). Old events are upcast on read, and queries filter on
payload fields (:mod:`.queries`). :mod:`.service` ties these to one project's log.

Names are loaded on first use, so ``eventsync`` sub-commands that never touch
schemas do not import pydantic models.
"""

from __future__ import annotations

import importlib

__all__ = ["REGISTRY", "PayloadSchema", "SchemaRegistry", "SchemaService", "Upcaster", "payload_version"]

_LAZY = {
    "REGISTRY": "mcp_server.schema.registry",
    "PayloadSchema": "mcp_server.schema.registry",
    "SchemaRegistry": "mcp_server.schema.registry",
    "Upcaster": "mcp_server.schema.registry",
    "payload_version": "mcp_server.schema.registry",
    "SchemaService": "mcp_server.schema.service",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'mcp_server.schema' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
