"""The ``eventsync`` command line for people.

Each sub-command imports what it needs when it runs, so ``eventsync hook``
stays cheap and ``eventsync events`` does not load the MCP SDK. Commands that
answer questions catch the project's projections up first, exactly like the
MCP tools, and ``--json`` prints JSON with the same fields the matching MCP
tool returns: an array for lists, an object for one result.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mcp_server import __version__
from mcp_server.argtypes import positive_number, whole_number
from mcp_server.errors import EventsyncError
from mcp_server.pm.commands import add_pm_commands
from mcp_server.schema.commands import add_schema_commands

__all__ = ["build_parser", "main"]


_positive = whole_number(1, "number")
_position = whole_number(0, "position")


def _print_json(items: Any) -> None:
    json.dump(items, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _runtime(args: argparse.Namespace) -> Any:
    from mcp_server.runtime import Runtime

    return Runtime(args.project)


def _warn_if_stale(runtime: Any) -> None:
    """Print the runtime's note when the last read may miss captured events (another process held the write lock)."""
    note = runtime.read_note()
    if note:
        print(f"eventsync: warning: {note}", file=sys.stderr)


# -- commands ----------------------------------------------------------------------------


def _cmd_init(args: argparse.Namespace) -> int:
    from mcp_server.install import init_project

    result = init_project(args.path)
    print(f"wrote the capture hook to {result.settings_path}")
    print(f"wrote the MCP server 'eventsync' to {result.mcp_path}")
    print(f"hook command: {result.hook_command}")
    return 0


def _cmd_uninstall(args: argparse.Namespace) -> int:
    from mcp_server.install import uninstall_project

    result = uninstall_project(args.path)
    if not result.changed:
        print(f"eventsync is not installed in {os.path.realpath(args.path)}: no eventsync hook in "
              f"{result.settings_path} and no 'eventsync' server in {result.mcp_path}; nothing changed")
        return 0
    if result.removed_hooks:
        print(f"removed {result.removed_hooks} eventsync hook handlers from {result.settings_path}")
    if result.removed_server:
        print(f"removed the MCP server 'eventsync' from {result.mcp_path}")
    for path in result.deleted_files:
        print(f"deleted {path}, which held only eventsync's entries")
    from mcp_server.paths import data_dir

    folder = data_dir(os.path.realpath(args.path))
    if os.path.isdir(folder):
        print(f"kept the event log in {folder}; delete that folder to discard it")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import signal

    import anyio

    from mcp_server.server import create_server

    received: list[int] = []

    def end_after_signal() -> None:
        # The SDK's thread that reads stdin cannot be stopped, and the event loop waits for it,
        # so after a signal the process ends here, the way the signal would have ended it.
        if received:
            logging.shutdown()
            signal.signal(received[0], signal.SIG_DFL)
            os.kill(os.getpid(), received[0])

    server = create_server(args.project, on_stopped=end_after_signal)

    async def serve_until_signal() -> None:
        # Claude Code sends SIGTERM when closing stdin did not stop a server. Ending through
        # cancellation lets the server release its leases, stop the relay and log that it stopped.
        async with anyio.create_task_group() as group:
            group.start_soon(_cancel_on_signal, group.cancel_scope, received, signal.SIGTERM)
            await server.run_stdio_async()
            group.cancel_scope.cancel()

    anyio.run(serve_until_signal)
    return 0


async def _cancel_on_signal(scope: Any, received: list[int], *signals: int) -> None:
    """Cancel ``scope`` when the process receives one of ``signals``, then log the signal and add it to ``received``."""
    import signal

    import anyio

    with anyio.open_signal_receiver(*signals) as incoming:
        async for number in incoming:
            logging.getLogger(__name__).info("received %s; stopping", signal.Signals(number).name)
            received.append(number)
            scope.cancel()
            return


def _cmd_hook(args: argparse.Namespace) -> int:
    from mcp_server.capture.hook import main as hook_main

    return hook_main()


def _cmd_events(args: argparse.Namespace) -> int:
    from mcp_server.store.base import EventFilter

    runtime = _runtime(args)
    query = EventFilter(types=tuple(args.type or ()), source=args.source, session_id=args.session, text=args.text)
    query.validate_request()
    # catch_up: modules emit events too (a Bash command's file.saved comes from reconcile)
    page = runtime.query_events(query, limit=args.limit, cursor=args.cursor, descending=not args.ascending,
                                catch_up=True)
    _warn_if_stale(runtime)
    if args.json:
        _print_json([event.to_dict() for event in page.events])
        return 0
    for event in page.events:
        print(_format_event(event))
    shown = f"{len(page.events)} of {page.total} events"
    print(shown + (f"; next page: --cursor {page.next_cursor}" if page.next_cursor else ""), file=sys.stderr)
    return 0


def _cmd_touchpoints(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    if args.check:
        return _check_touchpoints(runtime, args)
    rows, total = runtime.list_touchpoints(name=args.name, path=args.file, limit=args.limit)
    _warn_if_stale(runtime)
    if args.json:
        _print_json([row.to_dict() for row in rows])
        return 0
    for row in rows:
        location = f"{row.path}:{row.line}" + (f" (cell {row.cell})" if row.cell is not None else "")
        symbol = f"{row.symbol} ({row.symbol_kind})" if row.symbol else "-"
        print(f"{row.name:<32} {location:<48} {symbol:<32} {row.description}")
    print(f"{len(rows)} of {total} touchpoint locations", file=sys.stderr)
    return 0


def _check_touchpoints(runtime: Any, args: argparse.Namespace) -> int:
    findings = runtime.check_touchpoints()
    _warn_if_stale(runtime)
    if args.json:
        _print_json(findings)
    else:
        for finding in findings:
            print(f"{finding['path']}:{finding['line']}: {finding['kind']}: {finding['message']}")
        print(f"{len(findings)} touchpoint problems", file=sys.stderr)
    return 1 if findings else 0


def _cmd_index(args: argparse.Namespace) -> int:
    from mcp_server.indexer import TerminalProgress

    report = _runtime(args).index_project(progress=TerminalProgress(sys.stderr))
    if args.json:
        _print_json(report.to_dict())
        return 0
    print(f"indexed {report.files} files: {report.changed} changed, {report.deleted} deleted")
    for path, reason in report.unreadable:
        print(f"could not read {path}: {reason}", file=sys.stderr)
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from mcp_server.store.base import text_tokens

    if not text_tokens(args.query):
        raise EventsyncError(
            f"search text {args.query!r} contains no words to search for; give words such as 'cart total', "
            "or list every touchpoint with 'eventsync touchpoints'"
        )
    runtime = _runtime(args)
    hits = runtime.search_touchpoints(args.query, limit=args.limit)
    _warn_if_stale(runtime)
    if hits.note:
        print(f"eventsync: note: {hits.note}", file=sys.stderr)
    if args.json:
        _print_json([hit.to_dict() for hit in hits])
        return 0
    for hit in hits:
        print(f"{hit.name:<32} {hit.path}:{hit.line:<8} {hit.snippet}")
    if not hits:
        print(f"no touchpoint matches {args.query!r}", file=sys.stderr)
    return 0


def _cmd_context(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    body = runtime.get_context(args.name)
    _warn_if_stale(runtime)
    if args.json:
        _print_json(body)
        return 0
    for location in body["locations"]:
        print(f"== {location['path']}:{location['line']} {location.get('description', '')}")
        print(location.get("code") or location.get("error", ""))
    if body.get("note"):
        print(body["note"], file=sys.stderr)
    return 0


def _cmd_emit(args: argparse.Namespace) -> int:
    from mcp_server.events import check_emittable

    check_emittable(args.type)
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise EventsyncError(f"--payload is not valid JSON ({exc.msg} at column {exc.colno}): {args.payload!r}") from exc
    stored = _runtime(args).emit(args.type, payload, source="cli", session_id=os.environ.get("CLAUDE_CODE_SESSION_ID"))
    if stored is None:
        print("an event with the same id is already stored")
    else:
        print(f"stored {stored.type} {stored.id} at position {stored.position}")
    return 0


def _cmd_rebuild(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    rebuilt = runtime.rebuild(args.module)
    print(f"rebuilt {', '.join(rebuilt)} from {runtime.log.head()} events")
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    stats = runtime.statistics()
    _warn_if_stale(runtime)
    if args.json:
        _print_json(stats)
        return 0
    sizes = stats["size_bytes"]
    print(f"project      {stats['project']}")
    print(f"log          {stats['log']} ({sizes['database'] / 1e6:.1f} MB, WAL {sizes['wal'] / 1e6:.1f} MB)")
    print(f"head         {stats['head']} events; {stats['inbox_pending']} waiting in the inbox, "
          f"{stats['inbox_rejected']} rejected")
    if stats["inbox_rejected"]:
        from mcp_server.ingest import rejected_dir

        print(f"rejected     inbox files that were not valid events are kept in {rejected_dir(runtime.data_dir)}; "
              "the warning logged when each was moved there gives the reason")
    print(f"failures     {stats['failed_events']} event.failed, {stats['parked_events']} parked")
    print(f"{'consumer':<14} {'checkpoint':>10} {'lag':>8} {'failed':>7} {'parked':>7}  lease")
    for consumer in stats["consumers"]:
        print(f"{consumer['name']:<14} {consumer['checkpoint']:>10} {consumer['lag']:>8} {consumer['failed']:>7} "
              f"{consumer['parked']:>7}  {consumer['lease_holder'] or '-'}")
    return 0


def _format_event(event: Any) -> str:
    detail = str(event.payload.get("path") or event.payload.get("name") or event.payload.get("command") or "")
    # One line per event keeps the columns: a multi-line Bash command shows its newlines as \n.
    detail = "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in detail)
    session = event.metadata.get("session_id") or "-"
    return f"{event.position:>8}  {event.timestamp}  {event.type:<24} {event.source:<20} {session:<12.12} {detail}"


def _cmd_notifications(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    entries = runtime.recent_notifications(args.limit)
    _warn_if_stale(runtime)
    if args.json:
        _print_json(entries)
        return 0
    for entry in reversed(entries):
        print(f"{entry['timestamp']}  {entry['message']}")
    if not entries:
        print("no notifications yet: they come from project and task events (eventsync pm ...)", file=sys.stderr)
    return 0


def _cmd_tail(args: argparse.Namespace) -> int:
    import time

    from mcp_server.store.base import EventFilter

    runtime = _runtime(args)
    page = runtime.query_events(EventFilter(types=tuple(args.type or ())), limit=args.lines)
    _warn_if_stale(runtime)
    for event in reversed(page.events):
        print(_format_event(event), flush=True)
    position = runtime.log.head()
    while args.follow:
        time.sleep(args.interval)
        events = runtime.query_events(EventFilter(types=tuple(args.type or ()), after=position), limit=500,
                                      descending=False).events
        for event in events:
            print(_format_event(event), flush=True)
            position = event.position
    return 0


def _cmd_parked(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    if args.replay:
        outcomes = runtime.replay_parked(args.replay, args.module)
        if args.json:
            _print_json(outcomes)
        for outcome in outcomes:
            state = "replayed" if outcome["replayed"] else "failed again; still parked"
            print(f"{outcome['module']}: {outcome['event_id']} {state}")
        return 0 if all(outcome["replayed"] for outcome in outcomes) else 1
    entries = runtime.parked(args.module)
    if args.json:
        _print_json(entries)
        return 0
    for entry in entries:
        print(f"{entry['consumer']:<14} {entry['position']:>8} {entry['event_id']} {entry['event_type']:<20} "
              f"attempts {entry['attempts']}: {entry['error']}")
    print(f"{len(entries)} parked events", file=sys.stderr)
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    if args.end is not None and args.end < args.start:
        raise EventsyncError(f"invalid range: --to {args.end} is before --from {args.start}; give --to at or after --from")
    count = _runtime(args).replay(args.module, args.start, args.end)
    print(f"replayed {count} events into {args.module}")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    from mcp_server.retention import RetentionRule

    rules = None
    if args.type is not None:
        rules = [RetentionRule(type=args.type, max_age_days=args.older_than_days, max_count=args.keep,
                               keep_latest_per=args.keep_latest_per)]
    deleted = _runtime(args).prune(rules)
    if not deleted:
        print("no retention rules: pass --type with a limit, or add [[retention]] to the settings")
    for event_type, count in sorted(deleted.items()):
        print(f"deleted {count} events of {event_type}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from mcp_server.demo import run_demo

    return run_demo()


def _cmd_relay(args: argparse.Namespace) -> int:
    import signal

    import anyio

    from mcp_server.team import Relay, TeamSettings

    runtime = _runtime(args)
    servers = args.url.split(",") if args.url else None
    settings = TeamSettings.from_environ(
        os.environ, root=runtime.root, data_dir=runtime.data_dir, servers=servers, project=args.key,
        machine_id=args.machine_id, stream=args.stream, replicas=args.replicas,
    )
    relay = Relay(runtime.log, settings, prepare=runtime.catch_up, resync=args.resync)
    print(f"relaying {runtime.root} as machine {settings.machine_id}: {settings.describe()}", file=sys.stderr)

    async def run_until_signal() -> None:
        async with anyio.create_task_group() as group:
            await group.start(relay.run)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    group.cancel_scope.cancel()
                    return

    try:
        anyio.run(run_until_signal)
    finally:
        runtime.close()
    return 0


# -- parser ------------------------------------------------------------------------------


def _add_query_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", help="project root (default: CLAUDE_PROJECT_DIR, else the git top level)")
    parser.add_argument("--json", action="store_true", help="print JSON with the MCP tool's fields")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``eventsync`` command."""
    parser = argparse.ArgumentParser(prog="eventsync", description="Every Claude Code edit becomes an event.")
    parser.add_argument("--version", action="version", version=f"eventsync {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    init = command("init", _cmd_init, "install the capture hook and MCP server into a project")
    init.add_argument("path", nargs="?", default=".", help="project folder (default: the current folder)")

    uninstall = command("uninstall", _cmd_uninstall, "remove the hooks and MCP server entry that init added")
    uninstall.add_argument("path", nargs="?", default=".", help="project folder (default: the current folder)")

    serve = command("serve", _cmd_serve, "run the MCP server on stdio (Claude Code starts it from .mcp.json)")
    serve.add_argument("--project", help="project root (default: CLAUDE_PROJECT_DIR, else the git top level)")

    command("hook", _cmd_hook, "capture one Claude Code hook payload from stdin (the PostToolUse entry point)")

    events = command("events", _cmd_events, "list events from the log, newest first")
    events.add_argument("--type", action="append", help="type or pattern such as file.saved or 'touchpoint.*'; repeatable")
    events.add_argument("--source", help="only events from this source (hook, mcp, cli, module:touchpoints, ...)")
    events.add_argument("--session", help="only events of this Claude Code session id")
    events.add_argument("--text", metavar="WORDS", help="only events whose type or payload contains every word "
                        "as a whole word; end a word with * to match a prefix, as in 'check*'")
    events.add_argument("--limit", type=whole_number(1, "number", maximum=500), default=50,
                        help="events per page (default 50, at most 500)")
    events.add_argument("--cursor", type=whole_number(1, "cursor"),
                        help="continue after this position, at least 1 (the previous page's next-page cursor)")
    events.add_argument("--asc", dest="ascending", action="store_true", help="oldest first")
    _add_query_options(events)

    touchpoints = command("touchpoints", _cmd_touchpoints, "list @touchpoint locations")
    touchpoints.add_argument("--name", help="only this exact touchpoint name")
    touchpoints.add_argument("--file", help="only this file (project-relative path)")
    touchpoints.add_argument("--limit", type=_positive, default=1000, help="locations to show (default 1000)")
    touchpoints.add_argument(
        "--check", action="store_true",
        help="report duplicate names in one file, malformed markers and markers followed by no code; exit 1 if any",
    )
    _add_query_options(touchpoints)

    index = command("index", _cmd_index, "index every project file (honours .gitignore in a git repository)")
    _add_query_options(index)

    search = command("search", _cmd_search, "full-text search over touchpoints")
    search.add_argument("query", help="words to find; the last one matches as a prefix")
    search.add_argument("--limit", type=_positive, default=20, help="results to show (default 20)")
    _add_query_options(search)

    context = command("context", _cmd_context, "show the code at every location of one touchpoint")
    context.add_argument("name", help="touchpoint name")
    _add_query_options(context)

    emit = command("emit", _cmd_emit, "append an event to the log")
    emit.add_argument("type", help="event type, dotted lower-case, e.g. note.added")
    emit.add_argument("--payload", default="{}", help="payload as a JSON object (default {})")
    emit.add_argument("--project", help="project root (default: CLAUDE_PROJECT_DIR, else the git top level)")

    rebuild = command("rebuild", _cmd_rebuild, "drop a module's state and rebuild it by replaying the log")
    rebuild.add_argument("module", help="touchpoints, search or context")
    rebuild.add_argument("--project", help="project root (default: CLAUDE_PROJECT_DIR, else the git top level)")

    stats = command("stats", _cmd_stats, "log size, head position, and per-module lag, failures and parked events")
    _add_query_options(stats)

    notifications = command("notifications", _cmd_notifications,
                            "projects created, tasks assigned or unblocked, bottlenecks, failed webhooks")
    notifications.add_argument("--limit", type=_positive, default=50, help="notifications to show (default 50)")
    _add_query_options(notifications)

    tail = command("tail", _cmd_tail, "print the newest events, and with -f keep printing new ones")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing events as they arrive")
    tail.add_argument("--type", action="append", help="type or pattern to show; repeatable")
    tail.add_argument("-n", "--lines", type=_positive, default=10, help="events to show first (default 10)")
    tail.add_argument("--interval", type=positive_number("interval"), default=0.5,
                      help="seconds between checks with -f (default 0.5)")
    tail.add_argument("--project", help="project root (default: CLAUDE_PROJECT_DIR, else the git top level)")

    parked = command("parked", _cmd_parked, "list events a module gave up on, or replay one")
    parked.add_argument("--module", help="only this module (touchpoints, search, context, ...)")
    parked.add_argument("--replay", metavar="EVENT_ID", help="handle this parked event again")
    _add_query_options(parked)

    replay = command("replay", _cmd_replay, "re-deliver a range of the log to one module without moving its checkpoint")
    replay.add_argument("module", help="module name, as listed by 'eventsync stats'")
    replay.add_argument("--from", dest="start", type=_position, default=0, help="start after this position (default 0)")
    replay.add_argument("--to", dest="end", type=_position, help="stop at this position (default: the head)")
    replay.add_argument("--project", help="project root (default: CLAUDE_PROJECT_DIR, else the git top level)")

    prune = command("prune", _cmd_prune, "apply retention (the [[retention]] settings, or one rule given here); "
                    "unprocessed events are never deleted")
    prune.add_argument("--type", help="type or pattern, e.g. file.saved (default: apply the configured rules)")
    prune.add_argument("--older-than-days", type=positive_number("age"), metavar="DAYS",
                       help="delete events older than this many days (a number greater than 0)")
    prune.add_argument("--keep", type=_positive, help="keep only the newest N events of the type")
    prune.add_argument("--keep-latest-per", help="with --older-than-days: keep the newest event per value of this "
                       "payload field (path, name, ...)")
    prune.add_argument("--project", help="project root (default: CLAUDE_PROJECT_DIR, else the git top level)")

    command("demo", _cmd_demo, "feed recorded Claude Code payloads through the hook and query the MCP server")

    relay = command("relay", _cmd_relay, "share this project's events with other machines through NATS JetStream")
    relay.add_argument("--url", help="NATS server URLs, comma-separated (default: EVENTSYNC_NATS_URL)")
    relay.add_argument("--key", help="project key every clone shares (default: EVENTSYNC_PROJECT, else the origin "
                       "remote's repository name)")
    relay.add_argument("--machine-id", help="this machine's name (default: EVENTSYNC_MACHINE_ID, else generated once)")
    relay.add_argument("--stream", help="JetStream stream (default: EVENTSYNC_NATS_STREAM, else EVENTSYNC)")
    relay.add_argument("--replicas", type=int, help="replicas of a stream the relay creates: 1, 3 or 5 (default 1)")
    relay.add_argument("--resync", action="store_true", help="read the whole stream again; the log skips what it has")
    relay.add_argument("--project", help="project root (default: CLAUDE_PROJECT_DIR, else the git top level)")
    add_pm_commands(commands)
    add_schema_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose or os.environ.get("EVENTSYNC_DEBUG") not in (None, "", "0") else logging.WARNING
    if args.command in ("serve", "relay"):
        level = min(level, logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except EventsyncError as exc:
        print(f"eventsync: error: {exc}", file=sys.stderr)
        return 1
    except (BrokenPipeError, KeyboardInterrupt):
        return 0
