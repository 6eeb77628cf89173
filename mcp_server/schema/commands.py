"""``eventsync schema``, ``eventsync query``, ``eventsync modules`` and ``eventsync config``.

Commands for people to read the event type reference, keep saved queries,
see which modules are loaded and check the settings. Only argparse is
imported until a command runs, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_schema_commands"]

_PROJECT_HELP = "project root (default: CLAUDE_PROJECT_DIR, else the git top level)"


def _runtime(args: argparse.Namespace) -> Any:
    from mcp_server.runtime import Runtime

    return Runtime(args.project)


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


# -- commands ----------------------------------------------------------------------------


def _cmd_schema(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    if args.markdown:
        sys.stdout.write(runtime.schema.markdown())
        return 0
    entries = runtime.schema.registry.entries()
    if args.json:
        _print_json([
            {"type": entry.type, "version": entry.version, "owner": entry.owner, "description": entry.description,
             "json_schema": entry.json_schema}
            for entry in entries
        ])
        return 0
    for entry in entries:
        print(f"{entry.type:<28} v{entry.version:<3} {entry.owner:<14} {', '.join(entry.fields)}")
    return 0


def _cmd_query_save(args: argparse.Namespace) -> int:
    from mcp_server.schema.queries import parse_where

    saved = _runtime(args).schema.save_query(args.name, tuple(args.type or ()), parse_where(args.where or ()))
    conditions = ", ".join(f"{key}={value!r}" for key, value in saved.where.items()) or "no payload conditions"
    print(f"saved query {saved.name!r}: types {', '.join(saved.types) or 'any'}; {conditions}")
    return 0


def _cmd_query_list(args: argparse.Namespace) -> int:
    queries = _runtime(args).schema.saved.all()
    if args.json:
        _print_json([query.to_dict() for query in queries])
        return 0
    for query in queries:
        conditions = " ".join(f"{key}={json.dumps(value)}" for key, value in query.where.items())
        print(f"{query.name:<24} {','.join(query.types) or '*':<32} {conditions}")
    return 0


def _cmd_query_run(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    runtime.ingest()
    page = runtime.schema.run_saved(args.name, limit=args.limit, cursor=args.cursor)
    if args.json:
        _print_json([event.to_dict() for event in page.events])
        return 0
    for event in page.events:
        print(f"{event.position:>8}  {event.timestamp}  {event.type:<24} {json.dumps(event.payload, ensure_ascii=False)}")
    print(f"{len(page.events)} of {page.total} events" + (f"; next page: --cursor {page.next_cursor}"
                                                         if page.next_cursor else ""), file=sys.stderr)
    return 0


def _cmd_query_delete(args: argparse.Namespace) -> int:
    _runtime(args).schema.saved.delete(args.name)
    print(f"deleted saved query {args.name!r}")
    return 0


def _cmd_modules(args: argparse.Namespace) -> int:
    modules = _runtime(args).modules.modules
    if args.json:
        _print_json([{**module.capabilities(), "reference": module.reference} for module in modules])
        return 0
    for module in modules:
        print(f"{module.name:<14} {module.version:<12} {module.kind:<8} {module.source:<12} "
              f"subscribes {', '.join(module.subscriptions) or '-'}; emits {', '.join(module.emits) or '-'}")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from mcp_server.config import load_config
    from mcp_server.paths import find_project_root

    loaded = load_config(args.project or find_project_root())
    settings = loaded.settings.model_dump(mode="json", by_alias=True)
    if args.json:
        _print_json({"sources": list(loaded.sources), "settings": settings})
        return 0
    print("settings read from: " + (", ".join(loaded.sources) or "no file (defaults)"), file=sys.stderr)
    _print_json(settings)
    return 0


# -- parser ------------------------------------------------------------------------------


def add_schema_commands(commands: Any) -> None:
    """Add ``schema``, ``query``, ``modules`` and ``config`` to the ``eventsync`` sub-command parsers."""
    schema = commands.add_parser("schema", help="list event types and their payload schemas",
                                 description="List event types with their payload version, owner and fields.")
    schema.set_defaults(handler=_cmd_schema)
    output = schema.add_mutually_exclusive_group()
    output.add_argument("--markdown", action="store_true", help="print the Markdown reference of every event type")
    output.add_argument("--json", action="store_true", help="print each type's JSON Schema")
    schema.add_argument("--project", help=_PROJECT_HELP)

    query = commands.add_parser("query", help="save, list, run and delete named event filters",
                                description="Saved queries: named filters on event types and payload fields.")
    actions = query.add_subparsers(dest="query_command", required=True, metavar="ACTION")

    save = actions.add_parser("save", help="save a query (replacing one of the same name)")
    save.set_defaults(handler=_cmd_query_save)
    save.add_argument("name", help="query name: letters, digits, '_', '.' or '-'")
    save.add_argument("--type", action="append", help="type or pattern such as task.assigned or 'task.*'; repeatable")
    save.add_argument("--where", action="append", metavar="FIELD=VALUE",
                      help="payload field equal to VALUE (JSON if it parses, else text); repeatable")
    save.add_argument("--project", help=_PROJECT_HELP)

    listing = actions.add_parser("list", help="list saved queries")
    listing.set_defaults(handler=_cmd_query_list)
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.add_argument("--project", help=_PROJECT_HELP)

    run = actions.add_parser("run", help="list the events a saved query matches, newest first")
    run.set_defaults(handler=_cmd_query_run)
    run.add_argument("name", help="saved query name")
    run.add_argument("--limit", type=int, default=50, help="events per page (default 50, at most 500)")
    run.add_argument("--cursor", type=int, help="continue after this position (from the previous page)")
    run.add_argument("--json", action="store_true", help="print a JSON array of events")
    run.add_argument("--project", help=_PROJECT_HELP)

    delete = actions.add_parser("delete", help="delete a saved query")
    delete.set_defaults(handler=_cmd_query_delete)
    delete.add_argument("name", help="saved query name")
    delete.add_argument("--project", help=_PROJECT_HELP)

    modules = commands.add_parser("modules", help="list loaded modules and what they subscribe to and emit",
                                  description="List built-in, configured and installed modules.")
    modules.set_defaults(handler=_cmd_modules)
    modules.add_argument("--json", action="store_true", help="print a JSON array")
    modules.add_argument("--project", help=_PROJECT_HELP)

    config = commands.add_parser("config", help="validate and print the eventsync settings",
                                 description="Read [tool.eventsync] in pyproject.toml and .eventsync/config.toml, "
                                 "validate them and print the result.")
    config.set_defaults(handler=_cmd_config)
    config.add_argument("--json", action="store_true", help="print the sources and settings as one JSON object")
    config.add_argument("--project", help=_PROJECT_HELP)
