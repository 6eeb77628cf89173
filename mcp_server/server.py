"""The MCP server: eventsync's tools for agents, over stdio.

The server's lifespan opens the project's :class:`~mcp_server.runtime.Runtime`,
starts the :class:`~mcp_server.bus.EventBus` and a tailer that keeps ingesting
captured events, running the durable modules and dispatching new events to
local subscribers. Tools read from the runtime after catching up, so every
result includes events captured while no server ran.

Every tool returns structured output and stays well below Claude Code's
25,000-token output cap: results are paged, and pages are cut to a character
budget with a cursor to continue. Nothing but JSON-RPC reaches stdout: the
SDK points fd 1 at stderr while serving, and logging goes to stderr.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import anyio
from anyio.abc import TaskStatus
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server import __version__, jsoncodec
from mcp_server.bus import EventBus
from mcp_server.errors import EventsyncError, StoreLockedError
from mcp_server.events import Event, check_emittable
from mcp_server.modules.search import SearchHit
from mcp_server.modules.touchpoints import TouchpointRow
from mcp_server.pm.tools import register_tools as register_pm_tools
from mcp_server.runtime import Runtime
from mcp_server.store.base import EventFilter, text_tokens

__all__ = ["MAX_RESULT_CHARS", "ServerState", "create_server"]

logger = logging.getLogger(__name__)

MAX_RESULT_CHARS = 60_000
"""Character budget of one tool result (about 15,000 tokens), under Claude Code's 25,000-token default cap."""

TAIL_INTERVAL = 0.1
"""Seconds between the tailer's checks for captured events; a check costs well under a millisecond."""

EMIT_SETTLE_SECONDS = 2.0
"""How long emit_event waits for this server's handlers, so it can report their failures."""

RETENTION_INTERVAL = 3600.0
"""Seconds between runs of the configured retention rules; the first run is at start-up."""

IDLE_WAL_CHECKPOINT = 5.0
"""Seconds without new events after which the server truncates the WAL file (about 1 ms when idle)."""

ANNOUNCE_RETRY_INTERVAL = 1.0
"""Seconds between attempts to record loaded modules after another process held the write lock at start-up."""

STARTUP_INDEX_WAIT = 20.0
"""Seconds a touchpoint tool waits for the start-up index to finish before it returns what is indexed so far."""

MAX_POSITION = 2**63 - 1
"""Largest log position, offset or whole number a tool accepts: SQLite's largest INTEGER."""

INSTRUCTIONS = """\
eventsync records every file change in this project as a typed event and keeps an index of \
@touchpoint annotations (comments like `# @touchpoint checkout-total Sums the cart`). \
Use list_touchpoints or search_touchpoints to find named places in the code, get_context to read \
the code at every location of one touchpoint, query_events to see what changed (type patterns: \
'file.saved', 'touchpoint.*', 'task.>'), and emit_event to record a fact other agents should see."""


@dataclass
class StartupIndex:
    """Progress of the full index the server runs at start-up while the touchpoint index is empty."""

    finished: anyio.Event = field(default_factory=anyio.Event)
    phase: str = "starting"
    done: int = 0
    total: int = 0

    def report(self, done: int, total: int, phase: str) -> None:
        """Record progress. The indexer calls this from its worker thread."""
        self.done, self.total, self.phase = done, total, phase

    def describe(self) -> str:
        """Return how far the index got, for a note to the agent."""
        if self.phase == "scan":
            return f"{self.done} of {self.total} files read"
        if self.phase == "starting":
            return "not started yet"
        return f"{self.done} of {self.total} changed files indexed"


@dataclass
class ServerState:
    """State the lifespan passes to every tool call."""

    runtime: Runtime
    bus: EventBus
    session_id: str | None
    startup_index: StartupIndex = field(default_factory=StartupIndex)


# -- tool results ------------------------------------------------------------------------


class QueryEventsResult(BaseModel):
    """One page of events."""

    events: list[Event]
    total: int = Field(description="Events matching the filter across all pages.")
    total_capped: bool = Field(default=False, description="True when at least `total` events match.")
    next_cursor: int | None = Field(description="Pass as cursor to get the next page; null on the last page.")
    note: str | None = Field(
        default=None, description="Set when the result may be incomplete: the start-up index is still running, "
        "or another process held the event log's write lock."
    )


class ListTouchpointsResult(BaseModel):
    """Touchpoint locations ordered by name, path and line."""

    touchpoints: list[TouchpointRow]
    total: int
    next_offset: int | None = Field(description="Pass as offset to get the next page; null on the last page.")
    note: str | None = Field(
        default=None, description="Set when the result may be incomplete: the start-up index is still running, "
        "or another process held the event log's write lock."
    )


class SearchTouchpointsResult(BaseModel):
    """Search results ranked by bm25."""

    hits: list[SearchHit]
    note: str | None = Field(
        default=None, description="Set when the result may be incomplete: the start-up index is still running, "
        "another process held the event log's write lock, or the query had too many hits to rank them all."
    )


class ContextLocation(BaseModel):
    """The code around one location of a touchpoint."""

    path: str
    line: int
    language: str
    description: str
    cell: int | None = None
    symbol: str | None = None
    symbol_kind: str | None = None
    start_line: int | None = None
    end_line: int | None = None
    code: str | None = None
    note: str | None = Field(default=None, description="Set when the symbol's code was cut.")
    error: str | None = None


class GetContextResult(BaseModel):
    """Every location of one touchpoint with the code around it."""

    name: str
    locations: list[ContextLocation]
    truncated: bool
    note: str | None = None
    cached: bool


class EmitEventResult(BaseModel):
    """Outcome of an emitted event."""

    stored: bool = Field(description="False when an event with the same id was already in the log.")
    id: str | None
    position: int | None
    type: str
    failed_handlers: list[str] = Field(
        default_factory=list, description="Handlers in this server that failed on the event (see event.failed)."
    )


# -- helpers -----------------------------------------------------------------------------


def _state(ctx: Context[Any, Any]) -> ServerState:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


async def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a blocking runtime call in a worker thread, turning eventsync errors into tool errors."""
    try:
        return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))
    except EventsyncError as exc:
        raise ToolError(str(exc)) from exc


async def _read(runtime: Runtime, function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """Run a runtime read like :func:`_call`, and return its result with the runtime's note on staleness."""

    def run() -> tuple[Any, str | None]:
        # read_note() is per thread, so it is taken in the thread that ran the read.
        return function(*args, **kwargs), runtime.read_note()

    result: tuple[Any, str | None] = await _call(run)
    return result


async def _startup_index_note(state: ServerState) -> str | None:
    """Wait up to :data:`STARTUP_INDEX_WAIT` seconds for the start-up index, and return a note if it still runs."""
    startup = state.startup_index
    with anyio.move_on_after(STARTUP_INDEX_WAIT):
        await startup.finished.wait()
        return None
    return (
        f"eventsync is still indexing this project at start-up ({startup.describe()}), so this answer covers "
        "only the files indexed so far; call the tool again shortly"
    )


def _join_notes(*notes: str | None) -> str | None:
    present = [note for note in notes if note]
    return " ".join(present) if present else None


def _fit(items: list[Any], budget: int = MAX_RESULT_CHARS) -> int:
    """Return how many leading items fit in ``budget`` characters of JSON (at least one)."""
    used = 0
    for count, item in enumerate(items):
        used += len(jsoncodec.dumps(item)) + 1
        if used > budget and count > 0:
            return count
    return len(items)


def _load_extra_modules(state: ServerState) -> None:
    """Start the runtime's local modules and those in ``EVENTSYNC_MODULES``."""
    state.runtime.modules.start(state.bus, env_modules=os.environ.get("EVENTSYNC_MODULES", ""))


async def _announce_modules(state: ServerState) -> bool:
    """Record changed modules and payload schemas in the log, and return False when another process held the lock.

    ``module.loaded`` and ``schema.updated`` are appended only when a module's
    capabilities or a payload schema differ from what the log recorded last.
    The write waits only briefly for the lock, so a stuck writer cannot hold
    up start-up, and reads are served from the log as last committed meanwhile.
    """
    try:
        await anyio.to_thread.run_sync(lambda: state.runtime.announce_modules(short_lock_wait=True))
    except StoreLockedError as exc:
        logger.warning("could not record loaded modules yet: %s; retrying in the background", exc)
        return False
    return True


async def _announce_modules_later(state: ServerState) -> None:
    """Retry recording loaded modules until the write lock is free."""
    attempts = 1
    while True:
        await anyio.sleep(ANNOUNCE_RETRY_INTERVAL)
        attempts += 1
        try:
            await anyio.to_thread.run_sync(lambda: state.runtime.announce_modules(short_lock_wait=True))
        except StoreLockedError as exc:
            if attempts % 30 == 0:  # one warning every 30 attempts, not one per attempt
                logger.warning("still cannot record loaded modules after %d attempts: %s", attempts, exc)
            continue
        except EventsyncError as exc:
            logger.error("could not record loaded modules: %s; restart the server to retry", exc)
            return
        logger.info("recorded loaded modules after %d attempts", attempts)
        return


async def _tail(state: ServerState, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Keep projections and local subscribers up to date with the log."""
    task_status.started()
    idle_since = anyio.current_time()
    last_head = -1
    next_retention = anyio.current_time()
    while True:
        try:
            await anyio.to_thread.run_sync(state.runtime.log.recover_if_removed)
            await anyio.to_thread.run_sync(state.runtime.catch_up)
            if anyio.current_time() >= next_retention:
                next_retention = anyio.current_time() + RETENTION_INTERVAL
                deleted = await anyio.to_thread.run_sync(state.runtime.prune)
                if deleted:
                    logger.info("retention deleted %s", deleted)
            await state.bus.dispatch_pending()
            head = await anyio.to_thread.run_sync(state.runtime.log.head)
            if head != last_head:
                last_head, idle_since = head, anyio.current_time()
            elif anyio.current_time() - idle_since > IDLE_WAL_CHECKPOINT:
                await anyio.to_thread.run_sync(state.runtime.log.checkpoint_wal)
                idle_since = anyio.current_time()
        except EventsyncError as exc:
            # Contained on purpose: a locked or briefly unreadable log must not stop the server.
            logger.error("tailer: %s; retrying", exc)
            await anyio.sleep(1.0)
        await anyio.sleep(TAIL_INTERVAL)


async def _index_if_empty(state: ServerState) -> None:
    """Index the whole project once when its touchpoint index is empty, after start-up has finished."""
    try:
        if os.environ.get("EVENTSYNC_AUTO_INDEX", "1") == "0":
            return
        if await anyio.to_thread.run_sync(state.runtime.index_is_empty):
            report = await anyio.to_thread.run_sync(state.runtime.index_project, state.startup_index.report)
            logger.info("first full index: %d files, %d with touchpoints", report.files, report.changed)
    except EventsyncError as exc:
        # Contained on purpose: the index fills from hook events anyway, and index_project can retry.
        logger.error("first full index failed: %s; call the index_project tool to retry", exc)
    except Exception:  # noqa: BLE001 - a failure in this background task would otherwise end the server
        logger.exception("first full index failed unexpectedly; the server keeps running, and the "
                         "index_project tool retries it")
    finally:
        state.startup_index.finished.set()


# -- server ------------------------------------------------------------------------------


def create_server(root: str | None = None, *, on_stopped: Callable[[], None] | None = None) -> MCPServer[ServerState]:
    """Build the eventsync MCP server for the project at ``root`` (default: detected).

    ``on_stopped`` is called once the server has closed the project's runtime.
    """

    states: list[ServerState] = []  # the lifespan's state, for resources (static resources get no Context)

    @asynccontextmanager
    async def lifespan(server: MCPServer[ServerState]) -> AsyncIterator[ServerState]:
        runtime = await anyio.to_thread.run_sync(lambda: Runtime(root))
        bus = EventBus(runtime.log, source="mcp")
        state = ServerState(runtime=runtime, bus=bus, session_id=os.environ.get("CLAUDE_CODE_SESSION_ID") or None)
        _load_extra_modules(state)
        announced = await _announce_modules(state)
        logger.info("eventsync %s serving project %s (log %s)", __version__, runtime.root, runtime.log.path)
        try:
            async with anyio.create_task_group() as group:
                await group.start(bus.run)
                await group.start(_tail, state)
                group.start_soon(_index_if_empty, state)
                if not announced:
                    group.start_soon(_announce_modules_later, state)
                if runtime.config.settings.webhooks:
                    from mcp_server.integrations.webhooks import WebhookDispatcher

                    await group.start(WebhookDispatcher(runtime.log, runtime.config.settings.webhooks).run)
                if os.environ.get("EVENTSYNC_NATS_URL"):
                    from mcp_server.team.relay import configured_relay

                    relay = configured_relay(runtime.log, root=runtime.root, data_dir=runtime.data_dir, environ=os.environ)
                    if relay is not None:
                        await group.start(relay.run)
                states.append(state)
                yield state
                group.cancel_scope.cancel()
        finally:
            runtime.close()
            logger.info("eventsync server stopped")
            if on_stopped is not None:
                on_stopped()

    server: MCPServer[ServerState] = MCPServer(
        "eventsync", instructions=INSTRUCTIONS, version=__version__, lifespan=lifespan
    )
    _register_tools(server)
    register_pm_tools(server)

    @server.resource(
        "eventsync://schema/events.md", mime_type="text/markdown",
        description="Reference of every event type: payload fields, versions and owning modules.",
    )
    async def event_types_reference() -> str:
        if not states:
            raise ToolError("the eventsync server is still starting; read the resource again")
        return str(await anyio.to_thread.run_sync(states[-1].runtime.schema.markdown))

    return server


def _register_tools(server: MCPServer[ServerState]) -> None:
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(annotations=read_only)
    async def query_events(
        ctx: Context[Any, Any],
        type: list[str] | str | None = None,
        source: str | None = None,
        session_id: str | None = None,
        correlation_id: str | None = None,
        since_position: Annotated[int | None, Field(ge=0, le=MAX_POSITION)] = None,
        until_position: Annotated[int | None, Field(ge=1, le=MAX_POSITION)] = None,
        since: str | None = None,
        until: str | None = None,
        payload: dict[str, str | Annotated[int, Field(ge=-MAX_POSITION - 1, le=MAX_POSITION)] | bool] | None = None,
        text: str | None = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
        cursor: Annotated[int | None, Field(ge=1, le=MAX_POSITION)] = None,
        order: str = "desc",
    ) -> QueryEventsResult:
        """Query the event log, newest first by default.

        type: exact types or patterns ('file.saved', 'touchpoint.*', 'task.>'). since/until: inclusive ISO 8601
        times such as '2026-12-04T23:30:00Z' or '...+05:00' (UTC when no offset is given).
        since_position/until_position: exclusive log positions. payload: equality on
        payload fields the selected types declare (path, name, tool, event_id, event_type and handler
        are indexed; others are read type by type). text: words that must all occur in type or payload as
        whole words; end a word with * to match a prefix ('check*' finds 'checkout'). Results are in log
        order, with since/until too: an event ingested late keeps the time it was captured.
        order: 'desc' or 'asc'. limit: at most 500. Pass next_cursor back as cursor for the next page.
        """
        if order not in ("asc", "desc"):
            raise ToolError(f"invalid order {order!r}: use 'asc' or 'desc'")
        types = (type,) if isinstance(type, str) else tuple(type or ())
        try:
            query = EventFilter(
                types=types, source=source, session_id=session_id, correlation_id=correlation_id,
                after=since_position, before=until_position, since=since, until=until,
                payload_equals=tuple((payload or {}).items()), text=text,
            )
            query.validate_request()
        except EventsyncError as exc:
            raise ToolError(str(exc)) from exc
        runtime = _state(ctx).runtime
        page, note = await _read(runtime, runtime.query_events, query, limit=limit, cursor=cursor,
                                 descending=order == "desc")
        items = [event.to_dict() for event in page.events]
        kept = _fit(items)
        next_cursor = page.events[kept - 1].position if kept < len(items) else page.next_cursor
        return QueryEventsResult(
            events=[Event.model_validate(item) for item in items[:kept]], total=page.total,
            total_capped=page.total_capped, next_cursor=next_cursor, note=note,
        )

    @server.tool(annotations=read_only)
    async def list_touchpoints(
        ctx: Context[Any, Any],
        name: str | None = None,
        file: str | None = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 200,
        offset: Annotated[int, Field(ge=0, le=MAX_POSITION)] = 0,
    ) -> ListTouchpointsResult:
        """List @touchpoint locations, optionally for one exact name and/or one file (project-relative path)."""
        limit = max(1, min(limit, 1000))
        state = _state(ctx)
        indexing = await _startup_index_note(state)
        (rows, total), stale = await _read(state.runtime, state.runtime.list_touchpoints, name=name, path=file,
                                           limit=limit, offset=max(0, offset))
        items = [row.to_dict() for row in rows]
        kept = _fit(items)
        next_offset = offset + kept if offset + kept < total else None
        return ListTouchpointsResult(
            touchpoints=rows[:kept], total=total, next_offset=next_offset,
            note=_join_notes(indexing, stale),
        )

    @server.tool(annotations=read_only)
    async def search_touchpoints(
        ctx: Context[Any, Any], query: str, limit: Annotated[int, Field(ge=1, le=100)] = 20
    ) -> SearchTouchpointsResult:
        """Full-text search over touchpoint names, descriptions and paths; the last word matches as a prefix."""
        if not text_tokens(query):
            raise ToolError(
                f"query {query!r} contains no words to search for; give words such as 'cart total', "
                "or call list_touchpoints for every touchpoint"
            )
        state = _state(ctx)
        indexing = await _startup_index_note(state)
        hits, stale = await _read(state.runtime, state.runtime.search_touchpoints, query, limit=max(1, min(limit, 100)))
        return SearchTouchpointsResult(hits=list(hits),
                                       note=_join_notes(indexing, stale, hits.note))

    @server.tool(annotations=read_only)
    async def get_context(ctx: Context[Any, Any], name: str) -> GetContextResult:
        """Return the code around every location of the touchpoint `name`, ordered by file and line."""
        state = _state(ctx)
        indexing = await _startup_index_note(state)
        try:
            body, stale = await _read(state.runtime, state.runtime.get_context, name)
        except ToolError as exc:
            if indexing is None:
                raise
            raise ToolError(f"{exc}. {indexing}") from exc
        return GetContextResult.model_validate({**body, "note": _join_notes(body.get("note"), indexing, stale)})

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False))
    async def index_project(ctx: Context[Any, Any]) -> dict[str, Any]:
        """Re-index every project file whose touchpoints may be out of date (honours .gitignore); reports progress."""

        scanned = [0]  # files read; processing counts on from there

        def progress(done: int, total: int, phase: str) -> None:
            # MCP requires each notification's progress to exceed the last one, so the
            # processing phase continues from the number of files read instead of restarting at 0.
            if phase == "scan":
                scanned[0] = total
                if done == total or done % 200 == 0:
                    anyio.from_thread.run(ctx.report_progress, done, total, "reading files")
            else:
                # Called once per batch of events, so every call is reported.
                anyio.from_thread.run(ctx.report_progress, scanned[0] + done, scanned[0] + total, "indexing")

        report = await _call(_state(ctx).runtime.index_project, progress)
        return dict(report.to_dict())

    @server.tool(annotations=read_only)
    async def log_stats(ctx: Context[Any, Any]) -> dict[str, Any]:
        """Return the log's size and head position, and each module's lag, failures and parked events."""
        state = _state(ctx)
        statistics, stale = await _read(state.runtime, state.runtime.statistics)
        return statistics | {"subscriptions": state.bus.statistics()} | ({"note": stale} if stale else {})

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False))
    async def parked_events(
        ctx: Context[Any, Any], module: str | None = None, replay: str | None = None
    ) -> dict[str, Any]:
        """List events a module gave up on after repeated failures; pass an event id as replay to retry it."""
        runtime = _state(ctx).runtime
        if replay is not None:
            return {"replayed": await _call(runtime.replay_parked, replay, module)}
        entries = await _call(runtime.parked, module)
        kept = _fit(entries)
        return {"parked": entries[:kept], "total": len(entries)}

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False))
    async def emit_event(
        ctx: Context[Any, Any], type: str, payload: dict[str, Any] | None = None
    ) -> EmitEventResult:
        """Append an event to the project's log (type: dotted lower-case, e.g. 'note.added'); other sessions see it.

        Types that eventsync's modules produce (file.*, code.*, task.*, touchpoint.*, event.failed, ...) are
        rejected; use the project-management tools for tasks. entity.created/updated/deleted are accepted.
        """
        state = _state(ctx)
        try:
            check_emittable(type)
            state.runtime.schema.check_emit(type, payload or {})
            stored = await state.bus.publish(type, payload or {}, source="mcp", session_id=state.session_id)
        except EventsyncError as exc:
            raise ToolError(str(exc)) from exc
        if stored is None:
            return EmitEventResult(stored=False, id=None, position=None, type=type)

        with anyio.move_on_after(EMIT_SETTLE_SECONDS):
            await state.bus.wait_idle()
        failures = await _call(
            state.runtime.log.query, EventFilter(types=("event.failed",), after=stored.position), limit=100
        )
        failed = sorted({
            str(event.payload.get("handler")) for event in failures.events
            if event.metadata.get("causation_id") == stored.id and event.payload.get("handler")
        })
        return EmitEventResult(stored=True, id=stored.id, position=stored.position, type=type, failed_handlers=failed)
