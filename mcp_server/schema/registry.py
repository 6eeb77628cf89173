"""The in-process registry of event payload schemas and their upcasters.

Each event type may have one payload model (a pydantic ``BaseModel``), owned
by the module that emits the type. Its JSON Schema is what the registry
publishes, and its version (the model's ``SCHEMA_VERSION`` class variable,
default 1) is stamped into ``metadata.schema_version`` of every event that
:func:`mcp_server.events.make_event` builds. Events stored without that key
count as version 1.

An *upcaster* turns a payload of version ``n`` into version ``n + 1``. When
the query API reads an older event, :meth:`SchemaRegistry.upcast` runs the
chain, so callers see the current version and never branch on history. The
stored event itself is never rewritten.

The persisted copy of the registry (the last schema seen per type, in the
log's database) and the ``schema.updated`` event live in
:mod:`mcp_server.schema.table`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from mcp_server import events, subjects
from mcp_server.errors import ConfigurationError, InvalidEventError
from mcp_server.store.base import QueryPage, StoredEvent

__all__ = ["REGISTRY", "PayloadSchema", "SchemaRegistry", "Upcaster", "payload_version"]

logger = logging.getLogger(__name__)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns a payload of version ``n`` into version ``n + 1``; it gets a copy and may change it in place."""

VERSION_KEY = "schema_version"
"""Metadata key that records the payload version an event was written with."""


def payload_version(event: StoredEvent) -> int:
    """Return the payload version ``event`` was written with (1 when it carries none)."""
    value = event.metadata.get(VERSION_KEY, 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


@dataclass(frozen=True, slots=True)
class PayloadSchema:
    """The registered payload model of one event type."""

    type: str
    version: int
    owner: str
    description: str
    model: type[BaseModel]
    json_schema: dict[str, Any] = field(compare=False)
    upcasters: Mapping[int, Upcaster] = field(default_factory=dict, compare=False)

    @property
    def fields(self) -> tuple[str, ...]:
        """Top-level payload fields the schema declares, sorted."""
        return tuple(sorted(self.json_schema.get("properties", {})))

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON Schema; it changes whenever the schema does."""
        return schema_fingerprint(self.json_schema)


def schema_fingerprint(json_schema: Mapping[str, Any]) -> str:
    """Return the SHA-256 hex digest of ``json_schema`` in canonical JSON."""
    canonical = json.dumps(json_schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=1024)
def _json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """Return the model's JSON Schema; cached because every runtime registers the same models again."""
    return model.model_json_schema()


def _model_version(model: type[BaseModel]) -> int:
    version = getattr(model, "SCHEMA_VERSION", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigurationError(
            f"payload model {model.__qualname__} has SCHEMA_VERSION {version!r}; use an integer of 1 or more"
        )
    return version


def _description(model: type[BaseModel], event_type: str) -> str:
    catalog = events.CATALOG.get(event_type)
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ").strip()
    if doc and not doc.startswith("Usage docs:"):
        return doc
    return catalog.description if catalog else ""


class SchemaRegistry:
    """Payload models by event type, with the upcasters between their versions.

    Registration is thread-safe. A type belongs to one owner: registering it
    again from the same owner replaces the entry (a module reloaded at a new
    version), from another owner raises :class:`ConfigurationError`.
    """

    def __init__(self, *, stamp_versions: bool = False) -> None:
        """Create an empty registry; with ``stamp_versions``, ``make_event`` stamps its versions."""
        self._schemas: dict[str, PayloadSchema] = {}
        self._lock = threading.Lock()
        self._stamp = stamp_versions
        self._warned: set[tuple[str, int]] = set()

    # -- registration ----------------------------------------------------------------

    def register(
        self,
        event_type: str,
        model: type[BaseModel],
        *,
        owner: str,
        upcasters: Mapping[int, Upcaster] | None = None,
    ) -> PayloadSchema:
        """Register ``model`` as the payload of ``event_type``; return the entry.

        ``upcasters`` maps a version ``n`` to the function that turns a
        version-``n`` payload into version ``n + 1``.

        Raises:
            ConfigurationError: the type belongs to another owner, the version is
                invalid, or an upcaster starts at a version the model does not precede.
            InvalidEventError: ``event_type`` is not a valid type name.
        """
        subjects.validate_type(event_type)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError(
                f"payload model for {event_type!r} from {owner!r} is {model!r}, not a pydantic BaseModel subclass; "
                "pass the model class"
            )
        version = _model_version(model)
        steps = dict(upcasters or {})
        for start in steps:
            if not isinstance(start, int) or not 1 <= start < version:
                raise ConfigurationError(
                    f"upcaster for {event_type!r} starts at version {start!r}, but the model is at version {version}; "
                    f"register upcasters only for versions 1 to {version - 1}"
                )
        entry = PayloadSchema(
            type=event_type,
            version=version,
            owner=owner,
            description=_description(model, event_type),
            model=model,
            json_schema=_json_schema(model),
            upcasters=steps,
        )
        with self._lock:
            existing = self._schemas.get(event_type)
            if existing is not None and existing.owner != owner:
                raise ConfigurationError(
                    f"event type {event_type!r} is registered by module {existing.owner!r}; module {owner!r} cannot "
                    "register it too: rename one of the types or disable one of the modules"
                )
            self._schemas[event_type] = entry
            if self._stamp:
                events.PAYLOAD_VERSIONS[event_type] = version
        return entry

    def register_models(
        self,
        models: Mapping[str, type[BaseModel]],
        *,
        owner: str,
        upcasters: Mapping[str, Mapping[int, Upcaster]] | None = None,
    ) -> list[PayloadSchema]:
        """Register every ``type → model`` of ``models``, with upcasters keyed by type."""
        steps = upcasters or {}
        unknown = sorted(set(steps) - set(models))
        if unknown:
            raise ConfigurationError(
                f"module {owner!r} declares upcasters for {', '.join(map(repr, unknown))} but no payload model; "
                "add the models or drop the upcasters"
            )
        return [self.register(name, model, owner=owner, upcasters=steps.get(name)) for name, model in models.items()]

    def unregister_owner(self, owner: str) -> list[str]:
        """Remove every type ``owner`` registered; return their names."""
        with self._lock:
            names = [name for name, entry in self._schemas.items() if entry.owner == owner]
            for name in names:
                del self._schemas[name]
                if self._stamp:
                    events.PAYLOAD_VERSIONS.pop(name, None)
        return names

    # -- lookup ----------------------------------------------------------------------

    def get(self, event_type: str) -> PayloadSchema | None:
        """Return the entry of ``event_type``, or None."""
        return self._schemas.get(event_type)

    def entries(self) -> list[PayloadSchema]:
        """Return every entry, sorted by type."""
        with self._lock:
            return [self._schemas[name] for name in sorted(self._schemas)]

    def version(self, event_type: str) -> int:
        """Return the current payload version of ``event_type`` (1 when it has no model)."""
        entry = self._schemas.get(event_type)
        return entry.version if entry else 1

    def validate_payload(self, event_type: str, payload: Mapping[str, Any]) -> None:
        """Check ``payload`` against the type's model; types without a model pass.

        Raises:
            InvalidEventError: the payload does not match, naming the field and the problem.
        """
        entry = self._schemas.get(event_type)
        if entry is None:
            return
        try:
            entry.model.model_validate(dict(payload))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or '(payload)'}: {error['msg']}"
                for error in exc.errors()
            )
            raise InvalidEventError(
                f"invalid payload for {event_type!r} (schema version {entry.version}): {problems}; "
                f"see 'eventsync schema --markdown' for the fields of {event_type}"
            ) from None

    # -- upcasting -------------------------------------------------------------------

    def upcast(self, event: StoredEvent) -> StoredEvent:
        """Return ``event`` with its payload in the current version of its type.

        Events already current, of unknown types, or written by a newer
        version come back unchanged. When a step of the chain is missing the
        event comes back at the last version reached, and a warning is logged
        once per type and version.
        """
        entry = self._schemas.get(event.type)
        if entry is None:
            return event
        start = payload_version(event)
        if start >= entry.version:
            return event

        payload: dict[str, Any] = json.loads(json.dumps(event.payload))
        version = start
        while version < entry.version:
            step = entry.upcasters.get(version)
            if step is None:
                self._warn_gap(event.type, version, entry.version)
                break
            payload = step(payload)
            version += 1
        if version == start:
            return event
        metadata = {**event.metadata, VERSION_KEY: version, "upcast_from": start}
        return StoredEvent(event.position, event.id, event.type, event.timestamp, event.source, payload, metadata)

    def upcast_all(self, stored: Iterable[StoredEvent]) -> list[StoredEvent]:
        """Return :meth:`upcast` of each event."""
        return [self.upcast(event) for event in stored]

    def upcast_page(self, page: QueryPage) -> QueryPage:
        """Return ``page`` with every event upcast."""
        return QueryPage(events=self.upcast_all(page.events), next_cursor=page.next_cursor, total=page.total)

    def _warn_gap(self, event_type: str, version: int, current: int) -> None:
        if (event_type, version) in self._warned:
            return
        self._warned.add((event_type, version))
        logger.warning(
            "no upcaster from version %d of %s (current version %d); such events are returned at version %d. "
            "Register an upcaster for version %d in the module that owns the type",
            version, event_type, current, version, version,
        )


REGISTRY = SchemaRegistry(stamp_versions=True)
"""The process-wide registry every runtime uses; it stamps versions into events built by ``make_event``."""
