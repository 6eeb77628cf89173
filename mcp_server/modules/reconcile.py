"""The reconcile projection: changes made through Bash and by other programs, as events.

Claude Code's ``Edit`` and ``Write`` hooks never fire when a shell command or
another program rewrites a file. :class:`Reconciler` is a durable consumer
that compares the working tree with the last state the log recorded for each
file, using :mod:`mcp_server.capture.worktree`. The recorded states live in
table ``reconcile_files``, fed by every ``file.saved``, ``code.modified`` and
``code.deleted``. The server and the CLI run it; the hook never does, because
the agent waits for the hook.

* After ``command.executed`` it emits ``file.saved`` (``tool: "Bash"``) for
  each file the command created or changed and ``code.deleted`` for each file
  it removed. A removed file whose content reappears under another name also
  gives ``refactor.complete`` with the rename map. The rename still gets its
  ``code.deleted`` and ``file.saved``, because consumers such as the
  touchpoint index act on those.
* At ``session.started`` and ``session.turn.ended`` it sweeps the tree the
  same way and emits ``code.modified`` and ``code.deleted`` for what changed
  outside any recorded tool.
* At ``session.turn.ended`` it emits ``session.turn.completed`` with what the
  turn changed. Through :class:`~mcp_server.modules.sessions.SessionBook` it
  leaves notices for sessions whose files changed elsewhere and keeps the list
  of files for Claude Code's watcher (:mod:`mcp_server.capture.notices`).

A file counts as changed only when its content hash differs from the recorded
one, so files that were dirty before a command and did not change are not
reported again. A change is the command's when the file's time lies between
the command's start and its hook. Older changes were made by another program
(``code.modified``), and newer ones are left for a later event. Emitted ids
derive from the triggering event, the path and the content hash, so two
processes catching up, or a retry, store each change once. Replays rebuild
the tables from the events alone: they read no files and write no notices.

NOTE: two sessions editing at the same moment can see each other's change
before its hook is ingested. A command's window or a sweep then records a
change that the other session's ``file.saved`` records again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from typing import Any

from mcp_server import ids, paths
from mcp_server.capture import notices
from mcp_server.capture.worktree import (
    Finding,
    KnownFile,
    Window,
    Worktree,
    WorktreeStatus,
    compare,
)
from mcp_server.events import make_event
from mcp_server.modules.sessions import (
    SessionBook,
    actor_session,
    describe_change,
    describe_touchpoints,
    timestamp_ns,
)
from mcp_server.store.base import StoredEvent

__all__ = ["COMMAND_START_SLACK_NS", "MAX_CHANGES_PER_SCAN", "SWEEP_MARGIN_NS", "Reconciler"]

logger = logging.getLogger(__name__)

MAX_CHANGES_PER_SCAN = 1000
"""Files one scan reports; beyond that (an unignored ``node_modules``) the rest is recorded without events."""

COMMAND_START_SLACK_NS = 1_000_000_000
"""Margin before a command's start within which a file change still counts as the command's.

File times come from the kernel's coarse clock and some file systems keep
whole seconds, so a file a command wrote can look slightly older than the
command's recorded start.
"""

SWEEP_MARGIN_NS = 50_000_000
"""Changes this close before a sweep's event are left to the next scan.

File times come from the kernel's coarse clock, which runs up to a tick (4 to
10 ms) behind the time the hook records. A file that a command writes just
after a ``SessionStart`` hook can therefore look older than the hook, and a
sweep would take it for another program's change.
"""

WATCH_LIST_WRITES_PER_SECOND = 5
"""Rewrites of the watch list allowed per second while files gain or lose touchpoints.

Indexing a new project changes the list once per file, and each rewrite
costs a query and a file write. A change held back by the limit is written
when the catch-up that applied it ends (:meth:`Reconciler.flush_watch_list`).
"""

_SCANNING = frozenset({"command.executed", "session.started", "session.turn.ended"})
_FILE_EVENTS = frozenset({"file.saved", "code.modified", "code.deleted", "refactor.complete", "file.read"})


class Reconciler:
    """Durable consumer that records changes made outside Claude Code's file tools."""

    name = "reconcile"
    version = 1
    subscriptions = (
        "command.executed",
        "session.started",
        "session.ended",
        "session.turn.ended",
        "file.saved",
        "file.read",
        "code.modified",
        "code.deleted",
        "refactor.complete",
        "touchpoint.updated",
    )
    depends_on: tuple[str, ...] = ()
    prepare_inline = True  # prepare does no I/O; see mcp_server.consumers.Projection
    emits = ("file.saved", "code.modified", "code.deleted", "refactor.complete", "session.turn.completed")

    def __init__(self, root: str, data_dir: str) -> None:
        self.root = root
        self.data_dir = data_dir
        self.worktree = Worktree(root)
        self.source = f"module:{self.name}"
        inside = paths.to_project_path(root, data_dir)
        self._data_prefix = inside + "/" if inside else None
        self._watch_list_stale = False
        self._watch_list_writes: list[float] = []

    # -- schema ----------------------------------------------------------------------

    def create(self, connection: sqlite3.Connection) -> None:
        """Create the table of recorded file states, the scan state and the session tables."""
        connection.execute(
            """CREATE TABLE IF NOT EXISTS reconcile_files (
                path TEXT PRIMARY KEY, content_hash TEXT, size INTEGER, mtime_ns INTEGER,
                present INTEGER NOT NULL, position INTEGER NOT NULL
            ) WITHOUT ROWID"""
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS reconcile_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
        )
        SessionBook.create(connection)

    def drop(self, connection: sqlite3.Connection) -> None:
        """Drop every table the projection owns."""
        connection.execute("DROP TABLE IF EXISTS reconcile_files")
        connection.execute("DROP TABLE IF EXISTS reconcile_state")
        SessionBook.drop(connection)

    # -- handling --------------------------------------------------------------------

    def prepare(self, event: StoredEvent) -> None:
        """Do nothing, because only the transaction can tell whether the event is replayed and must not scan."""

    def apply(self, connection: sqlite3.Connection, event: StoredEvent, prepared: None) -> list[dict[str, Any]]:
        """Update the recorded state from ``event``; after commands and at session boundaries, scan the tree."""
        live = self._is_live(connection, event)
        actor = actor_session(event)
        lower_ns = self._command_start(connection, event, actor) if event.type == "command.executed" else None
        if actor is not None:
            SessionBook.seen(connection, actor, event)

        if event.type in _FILE_EVENTS:
            self._record(connection, event, actor)
            if live and event.type != "file.read":
                self._notify(connection, event, actor)
            return []
        if event.type == "touchpoint.updated":
            self._track_touchpoints(connection, event, live)
            return []
        if event.type == "session.ended":
            if live and actor is not None:
                self._discard_notices(actor)
            return []

        emitted: list[dict[str, Any]] = []
        if event.type == "command.executed" and actor is not None:
            SessionBook.add_to_turn(connection, actor, "command", event.id)
        if live and event.type in _SCANNING:
            upper_ns = timestamp_ns(event.timestamp)
            if event.type != "command.executed":
                upper_ns -= SWEEP_MARGIN_NS
            emitted = self._scan(connection, event, actor, Window(lower_ns, upper_ns))
        if live and event.type in ("session.started", "session.turn.ended"):
            self._write_watch_paths(connection)
        if event.type == "session.turn.ended" and actor is not None:
            summary = SessionBook.complete_turn(connection, actor)
            event_id = ids.derived_event_id(self.name, event.id, "session.turn.completed")
            emitted.append(make_event("session.turn.completed", summary, source=self.source, cause=event,
                                      event_id=event_id))
        return emitted

    def _is_live(self, connection: sqlite3.Connection, event: StoredEvent) -> bool:
        """Return whether ``event`` is handled for the first time, so its emitted events are kept.

        A rebuild replays events up to ``replay_until``, and a replay of past or
        parked events finds the checkpoint already past them. In both cases the
        runner discards what ``apply`` emits, so a scan would record changes that
        no event reports.
        """
        row = connection.execute("SELECT replay_until FROM projections WHERE name = ?", (self.name,)).fetchone()
        if row is not None and event.position <= int(row[0]):
            return False
        checkpoint = connection.execute("SELECT position FROM checkpoints WHERE consumer = ?", (self.name,)).fetchone()
        return checkpoint is None or int(checkpoint[0]) < event.position

    def _command_start(self, connection: sqlite3.Connection, event: StoredEvent, actor: str | None) -> int | None:
        """Return the earliest time (ns) a change may have and still count as made by the command, None if unknown."""
        duration = event.payload.get("duration_ms")
        if isinstance(duration, int) and not isinstance(duration, bool) and duration >= 0:
            return timestamp_ns(event.timestamp) - duration * 1_000_000 - COMMAND_START_SLACK_NS
        # Claude Code before 2.1.119 sends no duration; the command then started after the
        # session's previous event, unless tools ran in parallel. A session seen for the first
        # time (the hook was installed mid-session) is bounded by the log's previous event, and
        # in an empty log every earlier change counts as another program's.
        previous = SessionBook.last_activity_ns(connection, actor) if actor is not None else None
        if previous is None:
            row = connection.execute(
                "SELECT timestamp FROM events WHERE position < ? ORDER BY position DESC LIMIT 1", (event.position,)
            ).fetchone()
            previous = timestamp_ns(str(row[0])) if row else None
        return previous - COMMAND_START_SLACK_NS if previous else None

    # -- recorded state --------------------------------------------------------------

    def _record(self, connection: sqlite3.Connection, event: StoredEvent, actor: str | None) -> None:
        """Take the file state an event reports as the recorded one, and note who used the file."""
        payload = event.payload
        if event.type == "refactor.complete":
            renames = payload.get("renames")
            if event.source != self.source and isinstance(renames, dict):  # own renames come with per-file events
                for old_path in renames:
                    _forget(connection, str(old_path), event.position)
            return

        path = payload.get("path")
        if not isinstance(path, str) or not path:
            return
        if actor is not None:
            how = "read" if event.type == "file.read" else "changed"
            SessionBook.touch(connection, actor, path, how, event.position)
            if event.type == "file.saved" and event.source == "hook":
                SessionBook.add_to_turn(connection, actor, "saved", path)
        if event.type == "file.read":
            return
        if event.type == "code.deleted":
            renamed_to = payload.get("renamed_to")
            if isinstance(renamed_to, str):
                SessionBook.follow_rename(connection, path, renamed_to)
            _forget(connection, path, event.position)
        elif payload.get("exists") is False:
            _forget(connection, path, event.position)
        elif "content_hash" in payload:  # an event emitted by hand may carry no file facts to record
            _remember(connection, path, KnownFile(
                _typed(payload.get("content_hash"), str), _typed(payload.get("size"), int),
                _typed(payload.get("mtime_ns"), int), present=True,
            ), event.position)

    @staticmethod
    def _known(connection: sqlite3.Connection) -> dict[str, KnownFile]:
        rows = connection.execute("SELECT path, content_hash, size, mtime_ns, present FROM reconcile_files")
        return {str(row[0]): KnownFile(row[1], row[2], row[3], bool(row[4])) for row in rows}

    # -- scanning --------------------------------------------------------------------

    def _scan(
        self, connection: sqlite3.Connection, event: StoredEvent, actor: str | None, window: Window
    ) -> list[dict[str, Any]]:
        """Compare the working tree with the recorded state and return the events for what changed."""
        status = self.worktree.status()
        committed, renames = self._commit_changes(connection, status)
        known = self._known(connection)
        entries = status.entries if status else {}
        hints = {path for path in event.payload.get("stale_files") or () if isinstance(path, str)}
        candidates = [path for path in sorted(set(known) | set(entries) | committed | hints) if not self._is_own(path)]

        comparison = compare(self.root, candidates, known, entries, committed, renames, window)
        emitted = self._events_for(connection, event, actor, comparison.findings)
        for path, mtime_ns in comparison.refreshed:
            connection.execute("UPDATE reconcile_files SET mtime_ns = ? WHERE path = ?", (mtime_ns, path))
        if status and status.head:
            connection.execute("INSERT OR REPLACE INTO reconcile_state (key, value) VALUES ('head', ?)", (status.head,))
        return emitted

    def _is_own(self, path: str) -> bool:
        """Return whether ``path`` lies in eventsync's data folder, whose inbox churns with every hook run."""
        return self._data_prefix is not None and (path + "/").startswith(self._data_prefix)

    def _commit_changes(
        self, connection: sqlite3.Connection, status: WorktreeStatus | None
    ) -> tuple[set[str], dict[str, str]]:
        """Return the paths and renames between the last scanned commit and HEAD, plus git's staged renames.

        A checkout, pull or reset rewrites files that ``git status`` then
        reports as clean, so the commits are compared too.
        """
        if status is None:
            return set(), {}
        renames = dict(status.renamed)
        row = connection.execute("SELECT value FROM reconcile_state WHERE key = 'head'").fetchone()
        if not status.head or row is None or row[0] == status.head:
            return set(), renames
        committed, commit_renames = self.worktree.changed_between(str(row[0]), status.head)
        return committed, {**commit_renames, **renames}

    # -- emitting --------------------------------------------------------------------

    def _events_for(
        self, connection: sqlite3.Connection, cause: StoredEvent, actor: str | None, findings: list[Finding]
    ) -> list[dict[str, Any]]:
        if len(findings) > MAX_CHANGES_PER_SCAN:
            logger.warning(
                "reconcile: %d files changed at event %s (%s); reporting the first %d and recording the rest "
                "without events; add generated folders to .gitignore",
                len(findings), cause.id, cause.type, MAX_CHANGES_PER_SCAN,
            )
        emitted: list[dict[str, Any]] = []
        renames: dict[str, str] = {}
        for number, finding in enumerate(findings):
            if finding.deleted:
                _forget(connection, finding.path, cause.position)
            else:
                state = KnownFile(finding.content_hash, finding.size, finding.mtime_ns, present=True)
                _remember(connection, finding.path, state, cause.position)
            if number >= MAX_CHANGES_PER_SCAN:
                continue
            emitted.append(self._change_event(cause, finding))
            if finding.deleted and finding.renamed:
                renames[finding.path] = finding.renamed
            elif actor is not None:
                SessionBook.add_to_turn(connection, actor, _turn_kind(finding), finding.path)

        if renames:
            in_window = all(finding.in_window for finding in findings if finding.deleted and finding.renamed)
            body: dict[str, Any] = {"renames": renames, **self._origin(cause, in_window)}
            emitted.append(self._derived("refactor.complete", body, cause, in_window, "renames"))
        return emitted

    @staticmethod
    def _origin(cause: StoredEvent, by_command: bool) -> dict[str, Any]:
        if by_command:
            return {"origin": "Bash", "tool": "Bash", "command_id": cause.id}
        return {"origin": "outside", "detected_by": cause.type}

    def _change_event(self, cause: StoredEvent, finding: Finding) -> dict[str, Any]:
        by_command = finding.in_window  # sweeps have no window, so only a command's scan attributes changes
        body: dict[str, Any] = {"path": finding.path, **self._origin(cause, by_command)}
        if finding.deleted:
            if finding.renamed:
                body["renamed_to"] = finding.renamed
            return self._derived("code.deleted", body, cause, by_command, finding.path)

        change = "update"
        if finding.renamed:
            change = "rename"
        elif finding.created:
            change = "create"
        body.update({
            "change": change,
            "content_hash": finding.content_hash,
            "size": finding.size,
            "mtime_ns": finding.mtime_ns,
            "exists": True,
        })
        if finding.renamed:
            body["renamed_from"] = finding.renamed
        event_type = "file.saved" if by_command else "code.modified"
        return self._derived(event_type, body, cause, by_command, finding.path, finding.content_hash or "")

    def _derived(
        self, event_type: str, body: dict[str, Any], cause: StoredEvent, by_command: bool, *key: str
    ) -> dict[str, Any]:
        event_id = ids.derived_event_id(self.name, cause.id, event_type, *key)
        event = make_event(event_type, body, source=self.source, cause=cause, event_id=event_id)
        if not by_command:
            event["metadata"]["session_id"] = None  # another program made the change, not the session that found it
        return event

    # -- notices and the watch list --------------------------------------------------

    def _notify(self, connection: sqlite3.Connection, event: StoredEvent, actor: str | None) -> None:
        line = describe_change(event)
        path = event.payload.get("path")
        if line is None or not isinstance(path, str) or "renamed_from" in event.payload:
            return  # a rename is announced once, with the removal of the old name
        moment = timestamp_ns(event.timestamp)
        for session in SessionBook.interested(connection, path, actor, moment, _change_position(connection, event)):
            self._leave_notice(session, event.id, line)

    def _track_touchpoints(self, connection: sqlite3.Connection, event: StoredEvent, live: bool) -> None:
        path = event.payload.get("path")
        if not isinstance(path, str):
            return
        has_touchpoints = bool(event.payload.get("touchpoints")) and not event.payload.get("deleted")
        if SessionBook.set_watched(connection, path, has_touchpoints, event.position) and live:
            self._watch_list_stale = True
        if self._watch_list_stale:
            now = time.monotonic()
            self._watch_list_writes = [moment for moment in self._watch_list_writes if now - moment < 1.0]
            if len(self._watch_list_writes) < WATCH_LIST_WRITES_PER_SECOND:
                self._write_watch_paths(connection)
        detail = describe_touchpoints(event)
        if not live or not detail:
            return

        actor = actor_session(event)
        cause = event.metadata.get("causation_id")
        moment = timestamp_ns(event.timestamp)
        for session in SessionBook.interested(connection, path, actor, moment, _change_position(connection, event)):
            if isinstance(cause, str) and self._amend_notice(session, cause, f"; {detail}"):
                continue
            author = f"session {actor}" if actor else "another program or the CLI"
            self._leave_notice(session, event.id, f"{event.timestamp} {path}: {detail} after a change by {author}")

    def _leave_notice(self, session: str, name: str, line: str) -> None:
        try:
            if not notices.write_notice(self.data_dir, session, name, line):
                logger.debug("notices of session %s are full; dropped: %s", session, line)
        except OSError as exc:
            # Contained on purpose: a notice is a courtesy, and the change itself is in the log.
            logger.warning("could not leave a notice for session %s in %s: %s", session, self.data_dir, exc)

    def _amend_notice(self, session: str, name: str, detail: str) -> bool:
        try:
            return notices.amend_notice(self.data_dir, session, name, detail)
        except OSError as exc:
            logger.warning("could not amend notice %s of session %s: %s", name, session, exc)
            return False

    def _discard_notices(self, session: str) -> None:
        try:
            notices.discard_session(self.data_dir, session)
        except OSError as exc:
            logger.warning("could not delete the notices of ended session %s: %s", session, exc)

    def flush_watch_list(self, connection: sqlite3.Connection) -> None:
        """Write the watch list if the rate limit held back its last change; call after a catch-up."""
        if self._watch_list_stale:
            self._write_watch_paths(connection)

    def _write_watch_paths(self, connection: sqlite3.Connection) -> None:
        """Write the files that contain touchpoints, most recently changed first, as the next sessions' watch list.

        An outside edit of such a file leaves the touchpoint index wrong until the
        next ``git status``; FileChanged fixes it at once. Other files matter only
        to the log, and the next command or sweep records them.
        """
        absolute = [os.path.join(self.root, path) for path in SessionBook.watched(connection)]
        try:
            notices.write_watch_paths(self.data_dir, absolute)
        except OSError as exc:
            logger.warning("could not write the watch list in %s: %s", self.data_dir, exc)
            return
        self._watch_list_stale = False
        self._watch_list_writes.append(time.monotonic())


def _remember(connection: sqlite3.Connection, path: str, state: KnownFile, position: int) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO reconcile_files (path, content_hash, size, mtime_ns, present, position)"
        " VALUES (?, ?, ?, ?, 1, ?)",
        (path, state.content_hash, state.size, state.mtime_ns, position),
    )


def _forget(connection: sqlite3.Connection, path: str, position: int) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO reconcile_files (path, content_hash, size, mtime_ns, present, position)"
        " VALUES (?, NULL, NULL, NULL, 0, ?)",
        (path, position),
    )


def _change_position(connection: sqlite3.Connection, event: StoredEvent) -> int:
    """Return the log position of the event that started ``event``'s chain (a hook event, a command).

    A session that used the file after that point already saw the change.
    """
    correlation = event.metadata.get("correlation_id")
    if not isinstance(correlation, str) or correlation == event.id:
        return event.position
    row = connection.execute("SELECT position FROM events WHERE id = ?", (correlation,)).fetchone()
    return int(row[0]) if row else event.position


def _typed(value: object, kind: type) -> Any:
    """Return ``value`` if it is a ``kind`` (a boolean is not an integer here), else None."""
    if isinstance(value, bool) or not isinstance(value, kind):
        return None
    return value


def _turn_kind(finding: Finding) -> str:
    if not finding.in_window:
        return "outside"
    if finding.renamed:
        return "renamed"
    return "deleted" if finding.deleted else "saved"
