"""Finding, registering and starting modules, and announcing them with ``module.loaded``.

A module is declared by an :class:`EventsyncModule`: its name and version,
the type patterns it subscribes to, the types it emits, and the payload
models of the types it owns (with upcasters). It also has either a
``projection`` factory or a ``handler``. A *durable* module's projection keeps
state and checkpoint in the log's database and runs in every process's
catch-up. A *local* module's handler is called on the MCP server's bus, for
in-memory state or side effects.

Modules come from four places, in this order:

1. **builtin**: the runtime's own projections (touchpoints, search, context and
   any other the runtime adds), the ``schema`` consumer, and the ``webhooks``
   outbox when webhooks are configured;
2. **config**: ``modules.load`` in the settings (see :mod:`mcp_server.config`);
3. **entry_point**: objects that installed packages declare in the
   ``eventsync.modules`` entry-point group (unless ``modules.entry_points`` is false);
4. **env**: ``EVENTSYNC_MODULES=package.module:function,...``, read by the
   MCP server only.

An entry or a ``modules.load`` item names an :class:`EventsyncModule`, a
function without arguments returning one, or a Python module with a
``MODULE`` attribute. A function taking ``(bus, runtime)`` is a *setup
function*: it subscribes what it likes itself, and the loader records the
subscriptions it added. ``modules.disable`` switches off modules by name
(an entry point's name counts too).

:meth:`ModuleSet.announce` appends ``module.loaded`` only for a module whose
capabilities differ from those recorded in the ``loaded_modules`` table, so a
restart with the same modules appends nothing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import logging
import re
import sqlite3
import types
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from mcp_server import __version__, ids, subjects
from mcp_server.config import EventsyncConfig
from mcp_server.errors import ConfigurationError, EventsyncError
from mcp_server.events import make_event
from mcp_server.schema.registry import Upcaster, schema_fingerprint
from mcp_server.store.base import StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog

if TYPE_CHECKING:
    from mcp_server.bus import EventBus
    from mcp_server.consumers import Projection
    from mcp_server.runtime import Runtime

__all__ = [
    "ENTRY_POINT_GROUP",
    "EventsyncModule",
    "LoadedModule",
    "ModuleContext",
    "ModuleSet",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "eventsync.modules"
"""Entry-point group that installed packages use to declare modules."""

Kind = Literal["durable", "local"]
Source = Literal["builtin", "config", "entry_point", "env"]
LocalHandler = Callable[[StoredEvent, "ModuleContext"], Awaitable[None] | None]
SetupFunction = Callable[["EventBus", "Runtime"], None]

_MODULE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


@dataclass(frozen=True)
class EventsyncModule:
    """The declaration of one module."""

    name: str
    version: str
    subscriptions: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    payload_models: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    upcasters: Mapping[str, Mapping[int, Upcaster]] = field(default_factory=dict)
    handler: LocalHandler | None = None
    projection: Callable[[Runtime], Projection] | None = None
    description: str = ""

    @property
    def kind(self) -> Kind:
        """``durable`` for a module with a projection, else ``local``."""
        return "durable" if self.projection is not None else "local"

    def check(self, origin: str) -> None:
        """Check the declaration.

        Raises:
            ConfigurationError: a name, pattern or type is invalid, or the module has both or neither of
                ``handler`` and ``projection``.
        """
        if not _MODULE_NAME.fullmatch(self.name):
            raise ConfigurationError(
                f"module from {origin} has invalid name {self.name!r}; use lower-case letters, digits, '_' or '-', "
                "starting with a letter"
            )
        if (self.handler is None) == (self.projection is None):
            raise ConfigurationError(
                f"module {self.name!r} from {origin} must set exactly one of handler (local) and projection (durable)"
            )
        if self.handler is not None and not self.subscriptions:
            raise ConfigurationError(
                f"module {self.name!r} from {origin} has a handler but no subscriptions; list the type patterns it handles"
            )
        try:
            for pattern in self.subscriptions:
                subjects.validate_pattern(pattern)
            for event_type in (*self.emits, *self.payload_models):
                subjects.validate_type(event_type)
        except EventsyncError as exc:
            raise ConfigurationError(f"module {self.name!r} from {origin}: {exc}") from None


@dataclass
class ModuleContext:
    """Context passed to a local module's handler with each event."""

    name: str
    bus: EventBus
    runtime: Runtime

    def publish(self, event_type: str, payload: dict[str, Any] | None = None) -> StoredEvent | None:
        """Append an event as this module, caused by the event being handled; see ``EventBus.publish_nowait``."""
        return self.bus.publish_nowait(event_type, payload or {}, source=f"module:{self.name}")


@dataclass
class LoadedModule:
    """A module the loader found, with where it came from."""

    name: str
    version: str
    kind: Kind
    source: Source
    reference: str
    subscriptions: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    payload_types: dict[str, int] = field(default_factory=dict)
    declaration: EventsyncModule | None = None
    setup: SetupFunction | None = None

    def capabilities(self) -> dict[str, Any]:
        """Return the ``module.loaded`` payload."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "source": self.source,
            "subscriptions": sorted(self.subscriptions),
            "emits": sorted(self.emits),
            "payload_types": dict(sorted(self.payload_types.items())),
        }


# -- resolving references --------------------------------------------------------------


def _import_object(reference: str, origin: str) -> object:
    module_name, _, attribute = reference.partition(":")
    try:
        target: object = importlib.import_module(module_name)
        for part in filter(None, attribute.split(".")):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"cannot load module {reference!r} from {origin}: {type(exc).__name__}: {exc}; "
            "check that the package is installed and use 'package.module:attribute'"
        ) from exc
    return target


def _resolve(target: object, reference: str, origin: str) -> EventsyncModule | SetupFunction:
    """Turn what a reference names into a declaration or a setup function."""
    if isinstance(target, types.ModuleType):
        declared = getattr(target, "MODULE", None)
        if declared is None:
            raise ConfigurationError(
                f"module {reference!r} from {origin} has no MODULE attribute; set MODULE = EventsyncModule(...) or "
                "name the object with 'package.module:attribute'"
            )
        target = declared
    if isinstance(target, EventsyncModule):
        return target
    if callable(target):
        required = [
            parameter for parameter in inspect.signature(target).parameters.values()
            if parameter.default is inspect.Parameter.empty
            and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        ]
        if len(required) == 2:
            return target  # type: ignore[return-value]
        if not required:
            built = target()
            if isinstance(built, EventsyncModule):
                return built
    raise ConfigurationError(
        f"{reference!r} from {origin} is {type(target).__name__}, not a module: name an EventsyncModule, a function "
        "returning one, or a setup function taking (bus, runtime)"
    )


def _distribution_version(reference: str) -> str:
    top = reference.partition(":")[0].split(".")[0]
    try:
        distributions = importlib.metadata.packages_distributions().get(top, [])
        return importlib.metadata.version(distributions[0]) if distributions else "0"
    except importlib.metadata.PackageNotFoundError:
        return "0"


# -- the set of modules --------------------------------------------------------------------


class ModuleSet:
    """The modules of one runtime: loaded in every process, started and announced by the server."""

    def __init__(self, runtime: Runtime, settings: EventsyncConfig) -> None:
        self.runtime = runtime
        self.settings = settings
        self.modules: list[LoadedModule] = []
        self._disabled = set(settings.modules.disable)
        self._skipped: set[str] = set()
        self._started = False

    # -- loading (every process) ---------------------------------------------------------

    @classmethod
    def load(cls, runtime: Runtime, settings: EventsyncConfig, *, extra: list[Projection] | None = None) -> ModuleSet:
        """Load built-in, configured and installed modules into ``runtime``.

        ``extra`` are further built-in projections (the schema consumer, the
        webhook outbox) that the runtime does not create itself.

        Raises:
            ConfigurationError: a module cannot be imported, is invalid, has a duplicate name, or a disabled
                module is needed by an enabled one.
        """
        modules = cls(runtime, settings)
        modules._load_builtins(extra or [])
        for index, reference in enumerate(settings.modules.load):
            origin = f"modules.load[{index}] of the eventsync settings"
            modules._add(_resolve(_import_object(reference, origin), reference, origin), "config", reference, origin)
        if settings.modules.entry_points:
            modules._load_entry_points()
        unknown = modules._disabled - {module.name for module in modules.modules} - modules._skipped
        if unknown:
            logger.warning("modules.disable names unknown modules: %s", ", ".join(sorted(unknown)))
        return modules

    def _load_builtins(self, extra: list[Projection]) -> None:
        runtime = self.runtime
        candidates = [*runtime.projections, *extra]
        disabled = {p.name for p in candidates if p.name in self._disabled}
        enabled = [p for p in candidates if p.name not in disabled]
        for projection in enabled:
            needed = set(getattr(projection, "depends_on", ())) & disabled
            if needed:
                raise ConfigurationError(
                    f"modules.disable switches off {', '.join(sorted(needed))}, which module {projection.name!r} reads; "
                    f"disable {projection.name!r} too, or enable {', '.join(sorted(needed))}"
                )
        runtime.projections[:] = [p for p in runtime.projections if p.name not in disabled]
        for projection in extra:
            if projection.name not in disabled:
                runtime.add_projection(projection)
        for projection in enabled:
            self.modules.append(
                LoadedModule(
                    name=projection.name,
                    version=f"{__version__}+{projection.version}",
                    kind="durable",
                    source="builtin",
                    reference=f"{type(projection).__module__}:{type(projection).__qualname__}",
                    subscriptions=tuple(projection.subscriptions),
                    emits=tuple(getattr(projection, "emits", ())),
                    payload_types=self._owned_types(projection.name),
                )
            )

    def _owned_types(self, owner: str) -> dict[str, int]:
        registry = self.runtime.schema.registry
        return {entry.type: entry.version for entry in registry.entries() if entry.owner == owner}

    def _load_entry_points(self) -> None:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in self._disabled:
                self._skipped.add(entry_point.name)
                logger.info("entry point %s is disabled in modules.disable; not loaded", entry_point.name)
                continue
            package = entry_point.dist.name if entry_point.dist else "an unknown package"
            origin = f"entry point {entry_point.name!r} of {package}"
            try:
                target = entry_point.load()
            except Exception as exc:  # noqa: BLE001 - any import error of third-party code is reported the same way
                raise ConfigurationError(
                    f"cannot load {origin} ({entry_point.value}): {type(exc).__name__}: {exc}; fix or uninstall the "
                    f"package, or add {entry_point.name!r} to modules.disable in the eventsync settings"
                ) from exc
            version = entry_point.dist.version if entry_point.dist else "0"
            self._add(_resolve(target, entry_point.value, origin), "entry_point", entry_point.value, origin, version)

    def _add(
        self,
        resolved: EventsyncModule | SetupFunction,
        source: Source,
        reference: str,
        origin: str,
        version: str | None = None,
    ) -> None:
        if not isinstance(resolved, EventsyncModule):
            self._add_setup(resolved, source, reference)
            return

        module = resolved
        module.check(origin)
        if module.name in self._disabled:
            logger.info("module %s from %s is disabled in modules.disable; not loaded", module.name, origin)
            return
        self._check_unique(module.name, origin)

        registry = self.runtime.schema.registry
        registry.register_models(module.payload_models, owner=module.name, upcasters=module.upcasters)
        self.runtime.schema.declared_types.update(module.emits)
        subscriptions = module.subscriptions
        if module.projection is not None:
            projection = module.projection(self.runtime)
            if projection.name != module.name:
                raise ConfigurationError(
                    f"module {module.name!r} from {origin} built a projection named {projection.name!r}; "
                    "give the projection the module's name"
                )
            subscriptions = tuple(projection.subscriptions)
            self.runtime.add_projection(projection)
        self.modules.append(
            LoadedModule(
                name=module.name,
                version=module.version or version or "0",
                kind=module.kind,
                source=source,
                reference=reference,
                subscriptions=subscriptions,
                emits=module.emits,
                payload_types=self._owned_types(module.name),
                declaration=module,
            )
        )
        logger.info("loaded %s module %s %s from %s", module.kind, module.name, module.version, origin)

    def _add_setup(self, setup: SetupFunction, source: Source, reference: str) -> None:
        name = reference
        self._check_unique(name, reference)
        self.modules.append(
            LoadedModule(
                name=name, version=_distribution_version(reference), kind="local", source=source,
                reference=reference, setup=setup,
            )
        )

    def _check_unique(self, name: str, origin: str) -> None:
        for loaded in self.modules:
            if loaded.name == name:
                raise ConfigurationError(
                    f"module name {name!r} from {origin} is already used by {loaded.reference!r} ({loaded.source}); "
                    "rename one, or add one to modules.disable"
                )

    # -- starting (the MCP server) -------------------------------------------------------

    def start(self, bus: EventBus, *, env_modules: str = "") -> None:
        """Subscribe local modules on ``bus``, run setup functions, and load ``env_modules`` (EVENTSYNC_MODULES).

        Raises:
            ConfigurationError: an ``env_modules`` entry cannot be loaded, or the set was already started.
        """
        if self._started:
            raise ConfigurationError("the modules were already started on a bus; start them once per server")
        self._started = True
        for reference in filter(None, (part.strip() for part in env_modules.split(","))):
            origin = "EVENTSYNC_MODULES"
            if ":" not in reference:
                reference += ":setup"
            self._add(_resolve(_import_object(reference, origin), reference, origin), "env", reference, origin)

        for loaded in self.modules:
            if loaded.setup is not None:
                before = len(bus.subscriptions)
                loaded.setup(bus, self.runtime)
                added = bus.subscriptions[before:]
                loaded.subscriptions = tuple(sorted({p for s in added for p in s.patterns}))
            elif loaded.declaration is not None and loaded.declaration.handler is not None:
                self._subscribe(bus, loaded.declaration)

    def _subscribe(self, bus: EventBus, module: EventsyncModule) -> None:
        handler = module.handler
        assert handler is not None
        context = ModuleContext(module.name, bus, self.runtime)
        upcast = self.runtime.schema.registry.upcast

        if inspect.iscoroutinefunction(handler):
            async def deliver_async(event: StoredEvent) -> None:
                await handler(upcast(event), context)  # type: ignore[misc]

            bus.subscribe(module.subscriptions, deliver_async, name=module.name)
        else:
            def deliver(event: StoredEvent) -> None:
                result = handler(upcast(event), context)
                if inspect.isawaitable(result):
                    raise ConfigurationError(
                        f"handler of module {module.name!r} returned an awaitable; declare it with 'async def'"
                    )

            bus.subscribe(module.subscriptions, deliver, name=module.name)

    # -- announcing --------------------------------------------------------------------

    def announce(self, log: SQLiteEventLog) -> list[StoredEvent]:
        """Append ``module.loaded`` for each module whose capabilities changed since last recorded; return them.

        Takes no write lock when nothing changed, so a server starts while
        another process holds the lock.

        Raises:
            StoreLockedError: something changed and the write lock could not be taken.
        """
        if not self._changed_since(_recorded_modules(log.connection)):
            return []
        appended: list[StoredEvent] = []
        with log.transaction() as connection:
            create_modules_table(connection)
            recorded = _recorded_modules(connection) or {}
            for loaded in self.modules:
                capabilities = loaded.capabilities()
                fingerprint = schema_fingerprint(capabilities)
                previous = recorded.get(loaded.name)
                if previous is not None and previous[0] == fingerprint:
                    continue
                event_id = ids.derived_event_id("module.loaded", loaded.name, fingerprint, previous[1] if previous else "")
                event = make_event("module.loaded", capabilities, source="runtime", event_id=event_id)
                appended += log.append_in(connection, [event])
                connection.execute(
                    "INSERT INTO loaded_modules (name, fingerprint, capabilities, event_id) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET fingerprint = excluded.fingerprint, "
                    "capabilities = excluded.capabilities, event_id = excluded.event_id",
                    (loaded.name, fingerprint, json.dumps(capabilities, sort_keys=True), event_id),
                )
            unloaded = set(recorded) - {loaded.name for loaded in self.modules}
            for name in sorted(unloaded):
                logger.info("module %s is no longer loaded", name)
                connection.execute("DELETE FROM loaded_modules WHERE name = ?", (name,))
        return appended

    def _changed_since(self, recorded: dict[str, tuple[str, str]] | None) -> bool:
        """Return True when a module's capabilities differ from ``recorded`` or a recorded module is gone."""
        if recorded is None:
            return True
        current = {loaded.name: schema_fingerprint(loaded.capabilities()) for loaded in self.modules}
        return {name: fingerprint for name, (fingerprint, _) in recorded.items()} != current

    def by_name(self, name: str) -> LoadedModule | None:
        """Return the loaded module ``name``, or None."""
        return next((loaded for loaded in self.modules if loaded.name == name), None)


def _recorded_modules(connection: sqlite3.Connection) -> dict[str, tuple[str, str]] | None:
    """Return each recorded module's (fingerprint, last module.loaded id), or None before the table exists."""
    exists = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'loaded_modules'"
    ).fetchone()
    if exists is None:
        return None
    return {
        str(row[0]): (str(row[1]), str(row[2]))
        for row in connection.execute("SELECT name, fingerprint, event_id FROM loaded_modules")
    }


def create_modules_table(connection: sqlite3.Connection) -> None:
    """Create ``loaded_modules`` (name, capability fingerprint, capabilities, last module.loaded id) if needed."""
    connection.execute(
        """CREATE TABLE IF NOT EXISTS loaded_modules (
            name TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            capabilities TEXT NOT NULL,
            event_id TEXT NOT NULL
        ) WITHOUT ROWID"""
    )
