"""One project's schema services, as the runtime uses them.

:class:`SchemaService` ties the process-wide registry to one log. It
registers the built-in payload models and records the registry in the log
(``schema.updated``). It upcasts events read through the query API, checks
``where`` fields and keeps saved queries. It also renders the Markdown
reference and enforces ``strict_types`` on emitted events.
"""

from __future__ import annotations

import os
from dataclasses import replace
from collections.abc import Mapping, Sequence
from typing import Any

from mcp_server.config import EventsyncConfig
from mcp_server.errors import InvalidEventError
from mcp_server.events import CATALOG
from mcp_server.pm import events as pm_events
from mcp_server.schema.builtin import BUILTIN_MODELS
from mcp_server.schema.queries import PayloadFields, SavedQueries, SavedQuery, query_where
from mcp_server.schema.reactions import SchemaReactions
from mcp_server.schema.reference import REFERENCE_FILE_NAME, render_markdown
from mcp_server.schema.registry import REGISTRY, SchemaRegistry
from mcp_server.schema.table import StoredSchema, load_schemas, sync_registry
from mcp_server.store.base import INDEXED_PAYLOAD_FIELDS, EventFilter, QueryPage, StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog

__all__ = ["SchemaService"]


class SchemaService:
    """Schemas, upcasting, payload-field queries and saved queries for one project's log."""

    def __init__(
        self,
        log: SQLiteEventLog,
        *,
        root: str,
        data_dir: str,
        settings: EventsyncConfig,
        registry: SchemaRegistry = REGISTRY,
    ) -> None:
        """Register the built-in models and create the schema tables if needed.

        Raises:
            ConfigurationError: a built-in type is already registered by another owner.
            StoreError: the tables cannot be created.
        """
        self.log = log
        self.registry = registry
        self.strict_types = settings.strict_types
        # Types that loaded modules declare in ``emits``: strict mode accepts them without a payload model.
        self.declared_types: set[str] = set()

        reference = settings.schema_.reference
        self.reference_path = os.path.join(root, reference) if reference else os.path.join(data_dir, REFERENCE_FILE_NAME)
        for owner, models in BUILTIN_MODELS.items():
            registry.register_models(models, owner=owner)
        registry.register_models(
            pm_events.PAYLOAD_MODELS, owner="pm", upcasters=getattr(pm_events, "UPCASTERS", None)
        )

        self.fields = PayloadFields(log, registry)
        self.saved = SavedQueries(log)
        self.reactions = SchemaReactions(self.reference_path, on_change=self.fields.refresh)

    # -- the persisted registry ----------------------------------------------------------

    def sync(self) -> StoredEvent | None:
        """Record the registry in the log; return the ``schema.updated`` it appended, if any."""
        return sync_registry(self.log, self.registry)

    def stored(self) -> dict[str, StoredSchema]:
        """Return the persisted schemas by type."""
        return load_schemas(self.log.connection)

    def markdown(self) -> str:
        """Return the Markdown reference: persisted schemas, overridden by the models loaded in this process."""
        schemas = self.stored()
        for entry in self.registry.entries():
            schemas[entry.type] = StoredSchema(
                type=entry.type, version=entry.version, owner=entry.owner, description=entry.description,
                json_schema=entry.json_schema, fingerprint=entry.fingerprint, updated_position=0,
            )
        return render_markdown(schemas)

    # -- reading -------------------------------------------------------------------------

    def query(
        self,
        query: EventFilter,
        *,
        where: Mapping[str, Any] | None = None,
        limit: int = 50,
        cursor: int | None = None,
        descending: bool = True,
    ) -> QueryPage:
        """Return one page of events in their current payload version, filtered on payload fields too.

        Raises:
            InvalidEventError: a ``where`` field is declared by none of the selected types, or a pattern is invalid.
        """
        # Conditions on fields without an index are checked here, after upcasting, rather than by the store.
        unindexed = {key: value for key, value in query.payload_equals if key not in INDEXED_PAYLOAD_FIELDS}
        if unindexed:
            indexed = tuple((key, value) for key, value in query.payload_equals if key in INDEXED_PAYLOAD_FIELDS)
            query = replace(query, payload_equals=indexed)
            where = {**unindexed, **(where or {})}
        if not where:
            page = self.log.query(query, limit=limit, cursor=cursor, descending=descending)
            return self.registry.upcast_page(page)
        self.fields.check(query.types, list(where))
        return query_where(
            self.log, query, where, self.registry.upcast, limit=limit, cursor=cursor, descending=descending
        )

    def save_query(self, name: str, types: Sequence[str], where: Mapping[str, Any]) -> SavedQuery:
        """Validate the fields and store the query ``name``.

        Raises:
            InvalidEventError: the name, a pattern or a field is invalid.
        """
        self.fields.check(types, list(where))
        return self.saved.save(name, types, where)

    def run_saved(self, name: str, *, limit: int = 50, cursor: int | None = None) -> QueryPage:
        """Run the saved query ``name``, newest first.

        Raises:
            NotFoundError: no query has that name.
        """
        saved = self.saved.get(name)
        return query_where(
            self.log, EventFilter(types=saved.types), saved.where, self.registry.upcast, limit=limit, cursor=cursor
        )

    # -- writing ---------------------------------------------------------------------

    def check_emit(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """Apply ``strict_types`` to an event about to be emitted; nothing is checked when it is off.

        Raises:
            InvalidEventError: the type is unknown, or its payload does not match the type's model.
        """
        if not self.strict_types:
            return
        if event_type not in CATALOG and event_type not in self.declared_types and self.registry.get(event_type) is None:
            raise InvalidEventError(
                f"unknown event type {event_type!r}: strict_types is on in the eventsync settings; use a type a "
                "module declares (see 'eventsync schema'), add it to a module's emits, or set strict_types = false"
            )
        self.registry.validate_payload(event_type, payload)
