"""``eventsync pm``: the project-management commands for people.

The same operations as the MCP tools, over the same
:class:`~mcp_server.pm.service.PMService`; ``--json`` prints the tool's
result model as JSON. ``--project`` keeps its meaning from the other
sub-commands (the project root folder); a project-management project is
named positionally or with ``--in``. Only argparse is imported until a
command runs, so building the parser stays cheap for the capture hook.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from mcp_server.argtypes import positive_number

__all__ = ["add_pm_commands"]


def _service(args: argparse.Namespace) -> Any:
    from mcp_server.runtime import Runtime

    return Runtime(args.project).pm


def _emit(args: argparse.Namespace, result: Any, text: str) -> int:
    if args.json:
        json.dump(result.model_dump(mode="json"), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(text)
    return 0


def _task_summary(task: Any) -> str:
    if task.status == "completed":
        state = "completed"
    elif task.ready:
        state = "ready"
    else:
        state = f"waits for {', '.join(task.blocked_by) or 'a dependency cycle'}"
    assigned = f"  assigned to {task.assignee}" if task.assignee else ""
    return f"{task.id}  {task.title}  [{task.project}, {state}]{assigned}"


def _task_line(change: Any) -> str:
    lines = [_task_summary(change.task)]
    if change.unblocked:
        lines.append("unblocked: " + ", ".join(f"{ref.id} ({ref.title})" for ref in change.unblocked))
    progress = change.progress
    lines.append(f"progress: {progress.completed}/{progress.total} ({progress.percent:g}%)")
    return "\n".join(lines)


def _status_text(status: Any) -> str:
    project, progress = status.project, status.project.progress
    header = f"{project.id}  {project.title}: {progress.completed}/{progress.total} tasks completed"
    lines = [f"{header} ({progress.percent:g}%)"]
    lines += [f"ready        {ref.id}  {ref.title}" for ref in status.ready]
    lines += [f"in progress  {item.id}  {item.title}  ({item.assignee})" for item in status.in_progress]
    for item in status.blocked:
        waits = ", ".join(ref.id for ref in item.blocked_by) or "itself"
        cycle = "  (cycle)" if item.in_cycle else ""
        lines.append(f"blocked      {item.id}  {item.title}  waits for {waits}{cycle}")
    lines += [f"bottleneck   {item.kind}: {item.reason}" for item in status.bottlenecks]
    lines += [f"code change  {c.task}: {c.change} {c.touchpoint} in {c.path} at {c.at}" for c in status.recent_code_changes]
    lines += [f"warning: {warning}" for warning in status.warnings]
    if status.truncated:
        lines.append("(lists cut; use --json or narrow the project)")
    return "\n".join(lines)


# -- handlers -------------------------------------------------------------------------


def _cmd_projects(args: argparse.Namespace) -> int:
    result = _service(args).list_projects()
    text = "\n".join(f"{p.id}  {p.title}  {p.progress.completed}/{p.progress.total} ({p.progress.percent:g}%)"
                     for p in result.projects) or "no projects yet; create one with 'eventsync pm create-project'"
    return _emit(args, result, text)


def _cmd_create_project(args: argparse.Namespace) -> int:
    result = _service(args).create_project(args.title, description=args.description)
    return _emit(args, result, f"created project {result.id}  {result.title}")


def _cmd_add(args: argparse.Namespace) -> int:
    result = _service(args).add_task(
        args.pm_project, args.title, depends_on=args.depends_on, touchpoints=args.touchpoint, estimate=args.estimate,
        assignee=args.assignee, description=args.description,
    )
    return _emit(args, result, _task_line(result))


def _cmd_update(args: argparse.Namespace) -> int:
    result = _service(args).update_task(
        args.task, project=args.pm_project, depends_on=args.depends_on, remove_depends_on=args.remove_dependency,
        touchpoints=args.touchpoint, estimate=args.estimate, title=args.title,
    )
    return _emit(args, result, _task_line(result))


def _cmd_assign(args: argparse.Namespace) -> int:
    result = _service(args).assign_task(args.task, args.assignee, project=args.pm_project)
    return _emit(args, result, _task_line(result))


def _cmd_complete(args: argparse.Namespace) -> int:
    result = _service(args).complete_task(args.task, project=args.pm_project)
    return _emit(args, result, _task_line(result))


def _cmd_status(args: argparse.Namespace) -> int:
    result = _service(args).project_status(args.pm_project)
    return _emit(args, result, _status_text(result))


def _cmd_ready(args: argparse.Namespace) -> int:
    status = _service(args).project_status(args.pm_project)
    if args.json:
        json.dump([ref.model_dump(mode="json") for ref in status.ready], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    for ref in status.ready:
        print(f"{ref.id}  {ref.title}")
    for warning in status.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    result = _service(args).task_detail(args.task, project=args.pm_project)
    lines = [_task_summary(result.task)]
    lines += [f"{entry.at}  {entry.kind:<18} {json.dumps(entry.detail, ensure_ascii=False)}" for entry in result.timeline]
    return _emit(args, result, "\n".join(lines))


class _NotJSON(ValueError):
    """Raised for ``NaN`` and ``Infinity``, which Python's JSON parser accepts but JSON does not define."""


def _reject_constant(name: str) -> Any:
    raise _NotJSON(name)


_hours = positive_number("estimate in hours")


def _parse_pairs(values: list[str], option: str) -> list[tuple[str, str]]:
    from mcp_server.errors import InvalidEventError

    pairs: list[tuple[str, str]] = []
    for value in values:
        key, separator, rest = value.partition("=")
        if not separator or not key:
            raise InvalidEventError(f"invalid {option} {value!r}: use KEY=VALUE")
        pairs.append((key, rest))
    return pairs


class _TooLarge(ValueError):
    """Raised for a JSON number too large for a 64-bit float (``1e999``), which Python reads as infinity."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _TooLarge(text)
    return value


def _attributes(args: argparse.Namespace) -> dict[str, Any]:
    from mcp_server.errors import InvalidEventError

    attributes: dict[str, Any] = {}
    for key, text in _parse_pairs(args.attr, "--attr"):
        try:
            # NaN and Infinity are not JSON, so they stay text like any other word.
            attributes[key] = json.loads(text, parse_float=_finite_float, parse_constant=_reject_constant)
        except (json.JSONDecodeError, _NotJSON):
            attributes[key] = text
        except _TooLarge:
            raise InvalidEventError(
                f"invalid --attr {key}={text}: a number in it is too large for a 64-bit float; give a smaller "
                f"number, or quote the value to store it as text: --attr '{key}=\"{text}\"'"
            ) from None
    for key in getattr(args, "unset", []):
        attributes[key] = None
    return attributes


def _entity_text(entity: Any) -> str:
    lines = [f"{entity.id}  ({entity.kind})  {json.dumps(entity.attributes, ensure_ascii=False)}"]
    lines += [f"  {link.relation} → {link.node}" for link in entity.links]
    lines += [f"  {link.node} {link.relation} → this" for link in entity.linked_from]
    return "\n".join(lines)


def _cmd_entity_create(args: argparse.Namespace) -> int:
    result = _service(args).create_entity(args.kind, _attributes(args), _parse_pairs(args.link, "--link"))
    return _emit(args, result, _entity_text(result))


def _cmd_entity_update(args: argparse.Namespace) -> int:
    links = _parse_pairs(args.link, "--link") if args.link or args.clear_links else None
    result = _service(args).update_entity(args.entity, _attributes(args), links)
    return _emit(args, result, _entity_text(result))


def _cmd_entity_delete(args: argparse.Namespace) -> int:
    _service(args).delete_entity(args.entity)
    print(f"deleted entity {args.entity}")
    return 0


def _cmd_entity_show(args: argparse.Namespace) -> int:
    result = _service(args).get_entity(args.entity)
    return _emit(args, result, _entity_text(result))


# -- parser ---------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, scoped: bool = False) -> argparse.ArgumentParser:
    parser.add_argument("--project", help="project root folder (default: CLAUDE_PROJECT_DIR, else the git top level)")
    parser.add_argument("--json", action="store_true", help="print the MCP tool's result as JSON")
    if scoped:
        parser.add_argument("--in", dest="pm_project", metavar="PROJECT",
                            help="look the task up in this project (id or title) when its title is ambiguous")
    return parser


def _task_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--depends-on", action="append", default=[], metavar="TASK",
                        help="task (id or title) that must be completed first; repeatable")
    parser.add_argument("--touchpoint", action="append", default=[], metavar="NAME",
                        help="@touchpoint name whose code the task changes; repeatable")
    parser.add_argument("--estimate", type=_hours, metavar="HOURS", help="estimated hours of work (greater than 0)")


def _entity_commands(pm: Any) -> None:
    entity = pm.add_parser("entity", help="create, update, delete or show a generic graph entity")
    actions = entity.add_subparsers(dest="entity_command", required=True, metavar="ACTION")

    def link_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                            help="attribute; VALUE is read as JSON when it parses, else as text; repeatable")
        parser.add_argument("--link", action="append", default=[], metavar="RELATION=NODE",
                            help="edge to project:ID, task:ID, person:ID or entity:ID; repeatable")

    create = _common(actions.add_parser("create", help="create an entity"))
    create.add_argument("kind", help="what the entity is, e.g. milestone, decision, risk")
    link_option(create)
    create.set_defaults(handler=_cmd_entity_create)

    update = _common(actions.add_parser("update", help="merge attributes; --link replaces every link"))
    update.add_argument("entity", help="entity id")
    link_option(update)
    update.add_argument("--unset", action="append", default=[], metavar="KEY", help="remove an attribute; repeatable")
    update.add_argument("--clear-links", action="store_true", help="remove every link (with no --link)")
    update.set_defaults(handler=_cmd_entity_update)

    delete = _common(actions.add_parser("delete", help="delete an entity and its links"))
    delete.add_argument("entity", help="entity id")
    delete.set_defaults(handler=_cmd_entity_delete)

    show = _common(actions.add_parser("show", help="show an entity and its links"))
    show.add_argument("entity", help="entity id")
    show.set_defaults(handler=_cmd_entity_show)


def add_pm_commands(commands: Any) -> None:
    """Add ``eventsync pm`` and its sub-commands to the CLI's sub-command parsers."""
    description = "plan projects and tasks: dependencies, readiness, bottlenecks, code changes at touchpoints"
    pm_parser = commands.add_parser("pm", help=description, description=description)
    pm = pm_parser.add_subparsers(dest="pm_command", required=True, metavar="PM_COMMAND")

    _common(pm.add_parser("projects", help="list projects with their progress")).set_defaults(handler=_cmd_projects)

    create = _common(pm.add_parser("create-project", help="create a project"))
    create.add_argument("title", help="project title; its id is a slug of it")
    create.add_argument("--description", default="", help="what the project is for")
    create.set_defaults(handler=_cmd_create_project)

    add = _common(pm.add_parser("add", help="add a task to a project"))
    add.add_argument("pm_project", metavar="PROJECT", help="project id or title")
    add.add_argument("title", help="task title; its id is a slug of it")
    _task_options(add)
    add.add_argument("--assignee", help="person or agent to assign it to")
    add.add_argument("--description", default="", help="what the task is")
    add.set_defaults(handler=_cmd_add)

    update = _common(pm.add_parser("update", help="add or remove dependencies, touchpoints, estimate or title"),
                     scoped=True)
    update.add_argument("task", help="task id or title")
    _task_options(update)
    update.add_argument("--remove-dependency", action="append", default=[], metavar="TASK",
                        help="dependency to drop; repeatable")
    update.add_argument("--title", help="new title")
    update.set_defaults(handler=_cmd_update)

    assign = _common(pm.add_parser("assign", help="assign an open task"), scoped=True)
    assign.add_argument("task", help="task id or title")
    assign.add_argument("assignee", help="person or agent name")
    assign.set_defaults(handler=_cmd_assign)

    complete = _common(pm.add_parser("complete", help="mark a task completed"), scoped=True)
    complete.add_argument("task", help="task id or title")
    complete.set_defaults(handler=_cmd_complete)

    for name, handler, help_text in (
        ("status", _cmd_status, "show progress, ready and blocked tasks, bottlenecks, warnings, code changes"),
        ("ready", _cmd_ready, "list the tasks that can start now"),
    ):
        parser = _common(pm.add_parser(name, help=help_text))
        parser.add_argument("pm_project", metavar="PROJECT", help="project id or title")
        parser.set_defaults(handler=handler)

    show = _common(pm.add_parser("show", help="show a task and its timeline"), scoped=True)
    show.add_argument("task", help="task id or title")
    show.set_defaults(handler=_cmd_show)

    _entity_commands(pm)
