"""Graph algorithms over a project's tasks: readiness, cycles, the critical path and bottlenecks.

Everything here runs networkx on a :class:`ProjectGraph` loaded from the
project-management tables. The cost is linear in the project's tasks and
dependencies, except the blocking count (:func:`waiting_counts`), which is
O(n·m/64). No function recurses on the graph, so a dependency cycle already
in the tables (after a bad import) is reported by
:meth:`ProjectGraph.cycles`, never followed.

:func:`readiness` is the single definition of "what can start now" that the
MCP tools, the CLI and the projection's ``task.unblocked`` flow all call.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import networkx as nx

from mcp_server.pm import tables
from mcp_server.pm.errors import DependencyCycleError
from mcp_server.pm.tables import TaskRow

__all__ = [
    "BLOCKING_THRESHOLD",
    "CRITICAL_PATH_MIN_TASKS",
    "CRITICAL_SHARE_THRESHOLD",
    "STALL_AFTER_HOURS",
    "BlockedTask",
    "Finding",
    "ProjectGraph",
    "Readiness",
    "check_dependency",
    "find_bottlenecks",
    "hours_between",
    "readiness",
    "render_loop",
    "waiting_counts",
]

BLOCKING_THRESHOLD = 3
"""Open tasks that must wait, directly or through others, on one workable task before it counts as a bottleneck.

Three is already most of the remaining work on the small projects an agent
plans in one session, and below it every ordinary chain of work would raise it.
Only tasks that can be worked on now (open, no open dependency) are reported:
in a chain every task holds up those after it, but only the head is holding
them up at the moment.
"""

CRITICAL_PATH_MIN_TASKS = 3
"""Tasks the critical path needs before one person's share of it is worth reporting."""

CRITICAL_SHARE_THRESHOLD = 0.5
"""Share of the critical path's estimate above which one assignee has too much of it."""

STALL_AFTER_HOURS = 24.0
"""Hours an assigned task on the critical path may go without activity before it counts as stalled."""

DEFAULT_ESTIMATE = 1.0
"""Weight of a task without an estimate, so the critical path counts tasks when nothing is estimated."""

_START = ("critical path start",)
"""Extra source node for the longest-path search; a tuple, so it never equals a task id."""


@dataclass(frozen=True, slots=True)
class BlockedTask:
    """An open task that cannot start, and why."""

    task: TaskRow
    blockers: tuple[str, ...]
    """Ids of the open (or missing) tasks it depends on."""
    in_cycle: bool


@dataclass(frozen=True, slots=True)
class Readiness:
    """A project's open tasks split into those that can start now and those that cannot, with its dependency cycles."""

    ready: list[TaskRow]
    blocked: list[BlockedTask]
    cycles: list[list[str]]
    """Each a loop of task ids with the first id repeated at the end."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One bottleneck in the current state of a project."""

    kind: str
    subject: str
    reason: str
    numbers: dict[str, float] = field(default_factory=dict)


@dataclass
class ProjectGraph:
    """One project's tasks and their dependencies as a networkx digraph (edge: task → what it depends on).

    The graph also holds the tasks outside the project that a dependency row
    names, and ids with no task row at all, which block like open tasks.
    """

    project_id: str
    tasks: dict[str, TaskRow]
    graph: nx.DiGraph

    @classmethod
    def load(cls, connection: sqlite3.Connection, project_id: str) -> ProjectGraph:
        """Read the project's tasks and every dependency row that touches one of them."""
        own = tables.project_tasks(connection, project_id)
        graph = nx.DiGraph()
        graph.add_nodes_from(task.id for task in own)
        rows = connection.execute(
            "SELECT task_id, depends_on FROM pm_dependencies WHERE task_id IN (SELECT id FROM pm_tasks WHERE "
            "project_id = ?) OR depends_on IN (SELECT id FROM pm_tasks WHERE project_id = ?) "
            "ORDER BY task_id, depends_on",
            (project_id, project_id),
        ).fetchall()
        graph.add_edges_from((str(task), str(dependency)) for task, dependency in rows)
        tasks = {task.id: task for task in own}
        outside = {node for node in graph.nodes if node not in tasks}
        tasks.update(tables.tasks_by_id(connection, outside))
        return cls(project_id, tasks, graph)

    @property
    def own_tasks(self) -> list[TaskRow]:
        """The project's own tasks in creation order."""
        own = [task for task in self.tasks.values() if task.project_id == self.project_id]
        return sorted(own, key=lambda task: (task.position, task.id))

    def is_open(self, task_id: str) -> bool:
        """Return whether ``task_id`` still blocks its dependents: it is open, or a dependency names it but no row exists."""
        task = self.tasks.get(task_id)
        return task is None or task.is_open

    def title(self, task_id: str) -> str:
        """Return the task's title, or its id when no row exists."""
        task = self.tasks.get(task_id)
        return task.title if task is not None else task_id

    def cycles(self) -> list[list[str]]:
        """Return one loop per strongly connected component and per self-dependency, earliest task first."""
        order = {task_id: (task.position, task_id) for task_id, task in self.tasks.items()}

        def rank(task_id: str) -> tuple[int, str]:
            return order.get(task_id, (1 << 62, task_id))

        loops = [[node, node] for node in sorted(nx.nodes_with_selfloops(self.graph), key=rank)]
        components = [c for c in nx.strongly_connected_components(self.graph) if len(c) > 1]
        for component in sorted(components, key=lambda c: min(rank(node) for node in c)):
            start = min(component, key=rank)
            edges = nx.find_cycle(self.graph.subgraph(component), source=start)
            loop = [edge[0] for edge in edges]
            loops.append([*loop, loop[0]])
        return loops

    def cyclic_tasks(self, loops: Iterable[list[str]]) -> set[str]:
        """Return every task in a strongly connected component that contains one of ``loops``."""
        members = {node for loop in loops for node in loop}
        cyclic: set[str] = set()
        for component in nx.strongly_connected_components(self.graph):
            if component & members:
                cyclic |= component
        return cyclic

    def weight(self, task_id: str) -> float:
        """Return the task's estimate, or :data:`DEFAULT_ESTIMATE`."""
        task = self.tasks.get(task_id)
        return task.estimate if task is not None and task.estimate is not None else DEFAULT_ESTIMATE

    def critical_path(self, excluded: set[str]) -> list[str]:
        """Return the chain of open tasks with the largest total estimate, first task to start first."""
        candidates = {task.id for task in self.own_tasks if task.is_open and task.id not in excluded}
        if not candidates:
            return []
        dag = nx.DiGraph()
        for task in self.own_tasks:
            if task.id in candidates:
                dag.add_edge(_START, task.id, weight=self.weight(task.id))
        for task_id, dependency in self.graph.edges:
            if task_id in candidates and dependency in candidates:
                dag.add_edge(dependency, task_id, weight=self.weight(task_id))
        return [str(node) for node in nx.dag_longest_path(dag, weight="weight")[1:]]


def readiness(connection: sqlite3.Connection, project_id: str) -> Readiness:
    """Return the project's open tasks that can start now, those that cannot, and any dependency cycles.

    A task is ready when it is open, every task it depends on is completed,
    and it is not part of a dependency cycle. This is the one definition every
    surface uses.
    """
    project = ProjectGraph.load(connection, project_id)
    loops = project.cycles()
    cyclic = project.cyclic_tasks(loops)
    ready: list[TaskRow] = []
    blocked: list[BlockedTask] = []
    for task in project.own_tasks:
        if not task.is_open:
            continue
        blockers = tuple(sorted(d for d in project.graph.successors(task.id) if project.is_open(d) and d != task.id))
        if blockers or task.id in cyclic:
            blocked.append(BlockedTask(task, blockers, task.id in cyclic))
        else:
            ready.append(task)
    return Readiness(ready, blocked, loops)


def render_loop(project: ProjectGraph, loop: list[str]) -> str:
    """Return ``loop`` as titles joined by arrows, for example ``C → A → B → C``."""
    return " → ".join(project.title(task_id) for task_id in loop)


def check_dependency(
    connection: sqlite3.Connection,
    task: TaskRow,
    dependency: TaskRow,
    pending: Iterable[tuple[str, str]] = (),
    removed: Iterable[tuple[str, str]] = (),
) -> None:
    """Check that ``task`` may depend on ``dependency``, given the stored edges plus ``pending`` less ``removed``.

    Raises:
        DependencyCycleError: ``dependency`` is ``task`` itself, or already waits on ``task``.
    """
    if task.id == dependency.id:
        raise DependencyCycleError(
            f"task {task.title!r} ({task.id}) cannot depend on itself: that would be a dependency cycle; "
            "name a different task",
            [task.id, task.id],
        )
    project = ProjectGraph.load(connection, task.project_id)
    project.graph.add_edges_from(pending)
    project.graph.remove_edges_from(removed)
    project.tasks.setdefault(dependency.id, dependency)
    graph = project.graph
    if task.id not in graph or dependency.id not in graph or not nx.has_path(graph, dependency.id, task.id):
        return
    loop = [task.id, *nx.shortest_path(graph, dependency.id, task.id)]
    raise DependencyCycleError(
        f"cannot make {task.title!r} depend on {dependency.title!r}: that would form the dependency cycle "
        f"{render_loop(project, loop)}, so none of these tasks could ever start; drop this dependency, or remove "
        "one of the others first",
        loop,
    )


def hours_between(earlier: str, later: str) -> float | None:
    """Return the hours from ``earlier`` to ``later`` (ISO 8601 timestamps), or None if either is unreadable."""
    try:
        start = datetime.fromisoformat(earlier)
        end = datetime.fromisoformat(later)
        return (end - start).total_seconds() / 3600
    except (TypeError, ValueError):
        return None


def find_bottlenecks(project: ProjectGraph, now: str, people: dict[str, str]) -> list[Finding]:
    """Return the project's bottlenecks at time ``now`` (ISO 8601), ``people`` mapping person id to name."""
    findings = _blocking(project)
    if not any(task.is_open and task.assignee is not None for task in project.own_tasks):
        return findings  # both remaining kinds are about assigned tasks on the critical path
    path = project.critical_path(project.cyclic_tasks(project.cycles()))
    findings.extend(_critical_path_owners(project, path, people))
    findings.extend(_stalled(project, path, now, people))
    return findings


def _blocking(project: ProjectGraph) -> list[Finding]:
    open_ids = [task.id for task in project.own_tasks if task.is_open]
    if len(open_ids) <= BLOCKING_THRESHOLD:
        return []
    waiting = waiting_counts(project.graph.subgraph(open_ids).copy())
    findings: list[Finding] = []
    for task_id in open_ids:
        count = waiting.get(task_id, 0)
        workable = not any(project.is_open(dependency) for dependency in project.graph.successors(task_id))
        if workable and count >= BLOCKING_THRESHOLD:
            findings.append(Finding(
                "blocking", task_id,
                f"{project.title(task_id)!r} holds up {count} of the {len(open_ids)} open tasks of "
                f"{project.project_id!r}, directly or through other tasks; finishing it first unblocks them",
                {"waiting_tasks": count, "open_tasks": len(open_ids), "threshold": BLOCKING_THRESHOLD},
            ))
    return findings


def waiting_counts(graph: nx.DiGraph) -> dict[str, int]:
    """Return, for every node, how many other nodes reach it (tasks that wait on it, directly or not).

    Calling ``nx.ancestors`` per node costs O(n·m) per evaluation, and the
    projection evaluates after every task event. Instead this walks the
    condensation (cycles collapsed) once in topological order, carrying each
    component's ancestors as a bit set with one bit per node, so it costs
    O(m·n/64) word operations.
    """
    if nx.is_directed_acyclic_graph(graph):
        return _dag_waiting_counts(graph)
    condensed = nx.condensation(graph)
    index = {node: position for position, node in enumerate(graph.nodes)}
    member_bits: dict[int, int] = {}
    for component, data in condensed.nodes(data=True):
        member_bits[component] = sum(1 << index[node] for node in data["members"])
    ancestors: dict[int, int] = {}
    counts: dict[str, int] = {}
    for component in nx.topological_sort(condensed):
        reach = 0
        for predecessor in condensed.predecessors(component):
            reach |= ancestors[predecessor] | member_bits[predecessor]
        ancestors[component] = reach
        members = condensed.nodes[component]["members"]
        for node in members:
            counts[str(node)] = reach.bit_count() + len(members) - 1
    return counts


def _dag_waiting_counts(graph: nx.DiGraph) -> dict[str, int]:
    """Return :func:`waiting_counts` for an acyclic graph, without the cost of condensing it."""
    index = {node: position for position, node in enumerate(graph.nodes)}
    reach: dict[str, int] = {}
    for node in nx.topological_sort(graph):
        bits = 0
        for predecessor in graph.predecessors(node):
            bits |= reach[predecessor] | (1 << index[predecessor])
        reach[node] = bits
    return {str(node): bits.bit_count() for node, bits in reach.items()}


def _critical_path_owners(project: ProjectGraph, path: list[str], people: dict[str, str]) -> list[Finding]:
    if len(path) < CRITICAL_PATH_MIN_TASKS:
        return []
    total = sum(project.weight(task_id) for task_id in path)
    owned: dict[str, list[str]] = {}
    for task_id in path:
        assignee = project.tasks[task_id].assignee
        if assignee is not None:
            owned.setdefault(assignee, []).append(task_id)
    findings: list[Finding] = []
    for person, task_ids in sorted(owned.items()):
        share = sum(project.weight(task_id) for task_id in task_ids) / total
        if share > CRITICAL_SHARE_THRESHOLD:
            findings.append(Finding(
                "critical_path_owner", person,
                f"{people.get(person, person)} holds {len(task_ids)} of the {len(path)} tasks on the critical path "
                f"of {project.project_id!r} ({share:.0%} of its {total:g} estimated hours); share them out so they "
                "can run in parallel",
                {"owned_tasks": len(task_ids), "path_tasks": len(path), "share": round(share, 4),
                 "path_estimate": total, "threshold": CRITICAL_SHARE_THRESHOLD},
            ))
    return findings


def _stalled(project: ProjectGraph, path: list[str], now: str, people: dict[str, str]) -> list[Finding]:
    findings: list[Finding] = []
    for task_id in path:
        task = project.tasks[task_id]
        if task.assignee is None:
            continue
        idle = hours_between(task.last_activity_at, now)
        if idle is None or idle < STALL_AFTER_HOURS:
            continue
        findings.append(Finding(
            "stalled", task_id,
            f"{task.title!r} is on the critical path of {project.project_id!r} and has had no activity for "
            f"{idle:.0f} h since {people.get(task.assignee, task.assignee)} took it; check in or reassign it",
            {"idle_hours": round(idle, 2), "threshold_hours": STALL_AFTER_HOURS},
        ))
    return findings
