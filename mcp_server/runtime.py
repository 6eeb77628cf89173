"""The runtime of one project: its log, projections and the queries every surface shares.

Both the MCP server and the CLI build a :class:`Runtime`. Before answering a
question about derived state they call :meth:`Runtime.catch_up`, which
ingests captured events from the inbox and runs every projection up to the
head of the log, so an answer never depends on whether a server was running
when a hook fired. The query methods here are the single implementation
behind the MCP tools and the CLI's ``--json`` output.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from mcp_server import paths
from mcp_server.consumers import ConsumerRunner, Projection
from mcp_server.errors import ConfigurationError, InvalidEventError, NotFoundError, StoreError, StoreLockedError
from mcp_server.events import make_event
from mcp_server.ingest import ingest_pending, pending_files, rejected_files
from mcp_server.modules.activity import Analytics, Notifications
from mcp_server.modules.context import ContextCache, FileStamp, build_context, file_stamps
from mcp_server.modules.reconcile import Reconciler
from mcp_server.modules.search import SearchHits, SearchIndex
from mcp_server.modules.touchpoints import TouchpointIndex, TouchpointRow
from mcp_server.pm.service import PMService
from mcp_server.retention import RetentionRule, apply_retention
from mcp_server.store.base import EventFilter, QueryPage, StoredEvent
from mcp_server.store.sqlite import SQLiteEventLog

__all__ = ["EVENTS_DB_NAME", "Runtime"]

logger = logging.getLogger(__name__)

EVENTS_DB_NAME = "events.db"

MAX_CATCH_UP_ROUNDS = 8
"""Projections feed each other (touchpoints → search, context); this bounds the rounds per catch-up."""

READ_LOCK_WAIT = 1.0
"""Seconds a read waits for the write lock to catch up first. Past that it reads the log as last committed.

A writer holds the lock for one transaction, and the module runner commits
its batches after about :data:`~mcp_server.consumers.BATCH_TRANSACTION_SECONDS`,
so a longer wait means a stuck or very busy writer. NOTE: reconcile runs
``git status`` inside its transaction, which on a large repository can take longer.
"""


class Runtime:
    """One project's event log and projections, shared by the server and the CLI."""

    def __init__(self, root: str | None = None, *, environ: dict[str, str] | None = None) -> None:
        """Open the project's log, creating the data folder and tables on first use.

        Raises:
            ConfigurationError: the data folder cannot be created.
            StoreError: the log cannot be opened.
        """
        env = dict(os.environ if environ is None else environ)
        self.root = os.path.realpath(root) if root else paths.find_project_root(environ=env)
        self.data_dir = paths.data_dir(self.root, env)
        self._prepare_data_dir()
        self.log = SQLiteEventLog(os.path.join(self.data_dir, EVENTS_DB_NAME))
        self.touchpoints = TouchpointIndex(self.root)
        self.search = SearchIndex()
        self.context = ContextCache()
        # reconcile runs first, so the index handles the file.saved events it emits in the same catch-up
        self.reconciler = Reconciler(self.root, self.data_dir)
        self.projections: list[Projection] = [self.reconciler, self.touchpoints, self.search, self.context]
        self.pm = PMService(self)
        self.projections.append(self.pm.projection)
        self.notifications = Notifications()
        self.analytics = Analytics()
        self.projections += [self.notifications, self.analytics]
        self.runner = ConsumerRunner(self.log)
        self._catch_up_lock = threading.Lock()
        self._reads = threading.local()  # the note of this thread's last read, see read_note()
        changed = [projection.name for projection in self.projections if self.runner.ensure(projection)]
        for name in changed:
            self._reset_dependents(name)
        self._load_modules()

    def _load_modules(self) -> None:
        """Read the settings, register payload schemas and load configured and installed modules."""
        from mcp_server.config import load_config
        from mcp_server.modules.loader import ModuleSet
        from mcp_server.schema.service import SchemaService

        self.config = load_config(self.root)
        settings = self.config.settings
        self.runner.handler_timeout = settings.consumers.timeout_seconds
        self.schema = SchemaService(self.log, root=self.root, data_dir=self.data_dir, settings=settings)
        extra: list[Projection] = [self.schema.reactions]
        if settings.webhooks:
            from mcp_server.integrations.webhooks import WebhookOutbox

            extra.append(WebhookOutbox(self.log, settings.webhooks, self.schema.registry))
        self.modules = ModuleSet.load(self, settings, extra=extra)

    def _prepare_data_dir(self) -> None:
        try:
            os.makedirs(self.data_dir, exist_ok=True)
            ignore = os.path.join(self.data_dir, ".gitignore")
            if not os.path.exists(ignore):
                with open(ignore, "w", encoding="utf-8") as handle:
                    handle.write("# Created by eventsync: the event log and its state are local to this machine.\n*\n")
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the eventsync data folder {self.data_dir!r}: {exc.strerror or exc}; "
                "make the project writable or set EVENTSYNC_HOME to a writable folder"
            ) from exc

    def close(self) -> None:
        """Release this process's consumer leases and close the log."""
        try:
            self.runner.release()
        except StoreError as exc:
            logger.warning("could not release consumer leases on close: %s; they expire by themselves", exc)
        self.log.close()

    def add_projection(self, projection: Projection) -> None:
        """Run ``projection`` as a durable consumer from now on."""
        self.runner.ensure(projection)
        self.projections.append(projection)

    def _dependents(self, name: str) -> list[Projection]:
        """Return the projections that read ``name``'s tables, directly or through others, in run order."""
        affected = {name}
        for projection in self.projections:
            if affected & set(getattr(projection, "depends_on", ())):
                affected.add(projection.name)
        return [projection for projection in self.projections if projection.name in affected - {name}]

    def _reset_dependents(self, name: str) -> None:
        for dependent in self._dependents(name):
            self.runner.reset(dependent)

    def rebuild(self, name: str) -> list[str]:
        """Drop projection ``name`` and those that read it, replay the log into them; return their names.

        Raises:
            NotFoundError: no projection has that name.
        """
        known = {projection.name: projection for projection in self.projections}
        if name not in known:
            raise NotFoundError(f"unknown module {name!r}; choose one of: {', '.join(sorted(known))}")
        with self._catch_up_lock:
            self.runner.reset(known[name])
            self._reset_dependents(name)
        self.catch_up()
        return [name, *(projection.name for projection in self._dependents(name))]

    def projection(self, name: str) -> Projection:
        """Return the projection called ``name``.

        Raises:
            NotFoundError: no projection has that name.
        """
        for projection in self.projections:
            if projection.name == name:
                return projection
        known = ", ".join(sorted(projection.name for projection in self.projections))
        raise NotFoundError(f"unknown module {name!r}; choose one of: {known}")

    # -- operations: statistics, parked events, replay, retention ------------------------

    def statistics(self) -> dict[str, Any]:
        """Return log size, head position, and per-consumer lag, failures and parked counts."""
        self.prepare_read(catch_up=False)
        return {
            "project": self.root,
            "log": self.log.path,
            "size_bytes": self.log.size_bytes(),
            "head": self.log.head(),
            "inbox_pending": len(pending_files(self.root, self.data_dir)),
            "inbox_rejected": len(rejected_files(self.data_dir)),
            "consumers": [self.runner.statistics(projection).to_dict() for projection in self.projections],
            "failed_events": self.log.query(EventFilter(types=("event.failed",)), limit=1).total,
            "parked_events": len(self.log.parked()),
            "context_cache": self.context_statistics(),
            "activity": Analytics.summary(self.log.connection),
        }

    def recent_notifications(self, limit: int = 50) -> list[dict[str, Any]]:
        """Return the newest notifications (projects created, tasks unblocked, bottlenecks, ...) first."""
        self.prepare_read()
        return Notifications.recent(self.log.connection, limit)

    def parked(self, module: str | None = None) -> list[dict[str, Any]]:
        """Return parked events, optionally of one module."""
        if module is not None:
            self.projection(module)
        return self.log.parked(module)

    def replay_parked(self, event_id: str, module: str | None = None) -> list[dict[str, Any]]:
        """Retry a parked event for every module (or one) that parked it; return the outcome per module.

        Raises:
            NotFoundError: no module parked that event.
        """
        entries = [entry for entry in self.parked(module) if entry["event_id"] == event_id]
        if not entries:
            raise NotFoundError(f"event {event_id!r} is not parked; list parked events with 'eventsync parked'")
        return [
            {"module": entry["consumer"], "event_id": event_id,
             "replayed": self.runner.replay_parked(self.projection(str(entry["consumer"])), event_id)}
            for entry in entries
        ]

    def replay(self, module: str, start: int, end: int | None = None) -> int:
        """Re-deliver positions ``(start, end]`` of the log to one module; return how many events."""
        self.catch_up()
        return self.runner.replay(self.projection(module), start, self.log.head() if end is None else end)

    def prune(self, rules: list[RetentionRule] | None = None) -> dict[str, int]:
        """Apply retention rules (default: the ``[[retention]]`` settings) after catching up.

        Catching up first means nothing a module has not processed is deleted.
        """
        if rules is None:
            rules = [
                RetentionRule(type=rule.type, max_age_days=rule.max_age_days, max_count=rule.max_count,
                              keep_latest_per=rule.keep_latest_per)
                for rule in self.config.settings.retention
            ]
        if not rules:
            return {}
        self.catch_up()
        return apply_retention(self.log, rules, consumers=[projection.name for projection in self.projections])

    # -- keeping up with the log -------------------------------------------------------

    def ingest(self) -> int:
        """Move captured events from the inbox into the log; return how many were new."""
        return ingest_pending(self.log, self.root, self.data_dir)

    def catch_up(self) -> None:
        """Ingest the inbox and bring every projection up to the head of the log."""
        with self._catch_up_lock:
            self.ingest()
            for _ in range(MAX_CATCH_UP_ROUNDS):
                head = self.log.head()
                for projection in self.projections:
                    self.runner.catch_up(projection)
                if self.log.head() == head:
                    break
            # The watch list is rewritten at most a few times a second while events are applied.
            # A change the limit held back is written now, so the list ends in the state of the last event.
            self.reconciler.flush_watch_list(self.log.connection)

    def read_note(self) -> str | None:
        """Return why this thread's last read may be out of date, or None when it saw everything captured."""
        return getattr(self._reads, "note", None)

    def prepare_read(self, *, catch_up: bool = True) -> None:
        """Catch up (or only ingest) before a read, unless another process holds the write lock.

        A read must not fail because a writer is stuck, so after
        :data:`READ_LOCK_WAIT` seconds it goes on with the log as last
        committed, and :meth:`read_note` returns what it may miss.
        """
        self._reads.note = None
        try:
            with self._short_lock_wait():
                if catch_up:
                    self.catch_up()
                else:
                    self.ingest()
        except StoreLockedError:
            pending = len(pending_files(self.root, self.data_dir))
            self._reads.note = (
                f"another process held the event log's write lock for more than {READ_LOCK_WAIT:g} s, so this "
                f"answer comes from the log as last committed: {pending} captured events wait in the inbox and "
                "modules may not have processed the newest events; ask again shortly, or find the process with "
                f"'fuser {self.log.path}'"
            )
            logger.info("read without catching up: %s", self._reads.note)

    def announce_modules(self, *, short_lock_wait: bool = False) -> None:
        """Append ``module.loaded`` and ``schema.updated`` for modules and payload schemas that changed.

        With ``short_lock_wait`` the write waits :data:`READ_LOCK_WAIT` seconds
        for the lock instead of the log's busy timeout.

        Raises:
            StoreLockedError: something changed and another process held the write lock.
        """
        with self._short_lock_wait() if short_lock_wait else nullcontext():
            self.modules.announce(self.log)
            self.schema.sync()

    @contextmanager
    def _short_lock_wait(self) -> Iterator[None]:
        """Make this thread's writes give up after :data:`READ_LOCK_WAIT` seconds instead of the log's busy timeout."""
        connection = self.log.connection
        previous = int(connection.execute("PRAGMA busy_timeout").fetchone()[0])
        connection.execute(f"PRAGMA busy_timeout = {int(READ_LOCK_WAIT * 1000)}")
        try:
            yield
        finally:
            connection.execute(f"PRAGMA busy_timeout = {previous}")

    # -- events ----------------------------------------------------------------------

    def emit(
        self, event_type: str, payload: dict[str, Any], *, source: str, session_id: str | None = None
    ) -> StoredEvent | None:
        """Append one event; return it, or None if an event with its id was already stored.

        Raises:
            InvalidEventError: the type or payload is invalid.
        """
        if not isinstance(payload, dict):
            raise InvalidEventError(f"payload must be a JSON object, got {type(payload).__name__}")
        self.schema.check_emit(event_type, payload)
        stored = self.log.append([make_event(event_type, payload, source=source, session_id=session_id)])
        return stored[0] if stored else None

    def query_events(
        self,
        query: EventFilter,
        *,
        limit: int = 50,
        cursor: int | None = None,
        descending: bool = True,
        where: dict[str, Any] | None = None,
        catch_up: bool = False,
    ) -> QueryPage:
        """Return one page of events matching ``query`` and payload conditions ``where``, after ingesting the inbox.

        Payloads come back in the current schema version of their type. With
        ``catch_up``, the modules process the log first, so the events they emit
        in reaction (such as reconcile's ``file.saved`` after a command) are included.

        Raises:
            InvalidEventError: a pattern is invalid, or a ``where`` field is declared by none of the selected types.
        """
        self.prepare_read(catch_up=catch_up)
        return self.schema.query(query, where=where, limit=limit, cursor=cursor, descending=descending)

    # -- touchpoints -----------------------------------------------------------------

    def list_touchpoints(
        self, *, name: str | None = None, path: str | None = None, limit: int = 200, offset: int = 0
    ) -> tuple[list[TouchpointRow], int]:
        """Return index rows (filtered by exact name and project-relative path) and their total count."""
        self.prepare_read()
        if path is not None:
            path = paths.to_project_path(self.root, path) or path
        connection = self.log.connection
        rows = TouchpointIndex.query(connection, name=name, path=path, limit=limit, offset=offset)
        return rows, TouchpointIndex.count(connection, name=name, path=path)

    def search_touchpoints(self, text: str, *, limit: int = 20) -> SearchHits:
        """Return touchpoints whose name, description or path match ``text``, best first."""
        self.prepare_read()
        return SearchIndex.search(self.log.connection, text, limit=limit)

    def get_context(self, name: str) -> dict[str, Any]:
        """Return the code around every location of touchpoint ``name``, from the cache when fresh.

        Raises:
            NotFoundError: no touchpoint has that name.
        """
        self.prepare_read()
        cached = ContextCache.lookup(self.log.connection, name, self.root)
        # A held write lock already cost this read one wait, so the cache's writes do not wait again.
        writable = self.read_note() is None and self._count_context_use("hits" if cached else "misses")
        if cached is not None:
            return {**cached, "cached": True}

        head = self.log.head()
        rows = TouchpointIndex.query(self.log.connection, name=name)
        if not rows:
            raise NotFoundError(
                f"no touchpoint named {name!r}; find existing names with list_touchpoints or search_touchpoints "
                "('eventsync touchpoints' or 'eventsync search' on the command line)"
            )
        stamps = file_stamps(self.root, {row.path for row in rows})
        body, files = build_context(self.root, name, rows)
        if writable:
            self._cache_if_current(name, body, files, stamps, head)
        return {**body, "cached": False}

    def _count_context_use(self, counter: str) -> bool:
        """Count a context cache hit or miss, or return False when another process held the write lock."""
        try:
            with self._short_lock_wait(), self.log.transaction() as connection:
                ContextCache.count(connection, counter)
        except StoreLockedError:
            logger.info("did not count a context cache %s: another process held the write lock", counter)
            return False
        return True

    def _cache_if_current(
        self, name: str, body: dict[str, Any], files: list[str], stamps: dict[str, FileStamp | None], head: int
    ) -> None:
        """Cache ``body`` unless events arrived while it was built (they may have made it stale)."""
        try:
            with self._short_lock_wait(), self.log.transaction() as connection:
                if self.log.head() != head or self.log.checkpoint(self.context.name, connection) != head:
                    return
                ContextCache.store(connection, name, body, files, stamps)
        except StoreLockedError:
            logger.info("did not cache context for %r: another process held the write lock", name)
        except StoreError as exc:
            logger.warning("could not cache context for %r: %s", name, exc)

    def context_statistics(self) -> dict[str, int]:
        """Return the context cache's hit, miss and invalidation counts."""
        return ContextCache.statistics(self.log.connection)

    def index_project(self, progress: Any = None) -> Any:
        """Index every project file whose touchpoint record is stale; return an ``IndexReport``.

        ``progress`` is called as ``progress(done, total, phase)``; see :mod:`mcp_server.indexer`.
        """
        from mcp_server.indexer import index_project

        return index_project(self, progress=progress)

    def index_is_empty(self) -> bool:
        """Return whether no file has been indexed yet, after catching up."""
        self.catch_up()
        return self.log.connection.execute("SELECT 1 FROM touchpoint_files LIMIT 1").fetchone() is None

    def check_touchpoints(self) -> list[dict[str, Any]]:
        """Return lint findings (duplicates, malformed markers, markers annotating nothing) after catching up."""
        from mcp_server.modules.touchpoints import check_index

        self.prepare_read()
        return check_index(self.log.connection, self.root)
