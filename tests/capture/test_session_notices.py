"""Keeping agents in sync: a change one session makes reaches the other sessions that used the file."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import HookRun, Project
from session_support import Session, commit_all, context_of, hook_output

from mcp_server.capture import notices


def _catch_up(project: Project) -> None:
    runtime = project.runtime()
    runtime.catch_up()
    runtime.close()


def test_edit_reaches_other_session(project: Project) -> None:
    alice, bob = Session(project, "s-alice"), Session(project, "s-bob")
    alice.start()
    bob.start()
    project.write("src/shared.py", "x = 1\n")
    bob.read("src/shared.py")
    _catch_up(project)

    alice.edit("src/shared.py", "x = 2\n")
    _catch_up(project)
    first = bob.hook("UserPromptSubmit", prompt="continue")
    again = bob.hook("UserPromptSubmit", prompt="continue")
    own = alice.edit("src/other.py", "y = 1\n")

    output = hook_output(first)
    assert output is not None
    assert set(output) == {"hookSpecificOutput"}
    assert output["hookSpecificOutput"]["hookEventName"] == "UserPromptSubmit"
    context = output["hookSpecificOutput"]["additionalContext"]
    assert "src/shared.py changed by session s-alice (Edit)" in context
    assert context.count("\n- ") == 1
    assert again.stdout == b""
    assert own.stdout == b""


def test_bash_rename_of_marker_reaches_reader(project: Project) -> None:
    project.runtime().close()
    Session(project, "s-setup").edit("src/util.py", "def helper():\n    pass\n# @touchpoint old-name\n")
    commit_all(project)
    alice, bob = Session(project, "s-alice"), Session(project, "s-bob")
    alice.start()
    bob.read("src/util.py")
    _catch_up(project)

    alice.bash("sed -i 's/old-name/new-name/' src/util.py")
    _catch_up(project)
    run = bob.edit("src/unrelated.py", "z = 0\n")

    context = context_of(run)
    assert hook_output(run)["hookSpecificOutput"]["hookEventName"] == "PostToolUse"
    assert "src/util.py changed by session s-alice (Bash)" in context
    assert "touchpoints added: new-name" in context
    assert "touchpoints removed: old-name" in context
    assert context.count("\n- ") == 1


def test_cli_index_change_reaches_session(project: Project) -> None:
    bob = Session(project, "s-bob")
    bob.edit("src/cfg.py", "debug = False\n")
    _catch_up(project)
    project.write("src/cfg.py", "debug = True\n")  # an editor, seen by no hook

    indexed = subprocess.run(
        [sys.executable, "-m", "mcp_server", "index"],
        cwd=project.root, env={**os.environ, "CLAUDE_PROJECT_DIR": str(project.root)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    _catch_up(project)
    context = context_of(bob.hook("UserPromptSubmit", prompt="go on"))

    assert indexed.returncode == 0, indexed.stderr
    assert "src/cfg.py changed by source index" in context


def test_notices_capped(project: Project) -> None:
    bob, alice = Session(project, "s-bob"), Session(project, "s-alice")
    names = [f"src/module_with_a_long_name_{index:03d}.py" for index in range(120)]
    for name in names:
        project.write(name, "v = 1\n")
    for name in names:
        bob.read(name)
    _catch_up(project)
    for name in names:
        alice.edit(name, "v = 2\n")
    _catch_up(project)

    context = context_of(bob.hook("UserPromptSubmit", prompt="next"))

    assert len(context) <= notices.MAX_CONTEXT_CHARS
    assert context.endswith("more changes are in the event log (query_events).")
    assert "src/module_with_a_long_name_000.py" in context


def test_ended_session_gets_no_notices(project: Project) -> None:
    alice, bob = Session(project, "s-alice"), Session(project, "s-bob")
    bob.edit("src/a.py", "a = 1\n")
    bob.end()
    _catch_up(project)

    alice.edit("src/a.py", "a = 2\n")
    _catch_up(project)

    assert not os.path.exists(notices.session_folder(str(project.root / ".eventsync"), "s-bob"))


def test_parallel_hook_runs_take_each_notice_once(project: Project) -> None:
    data = str(project.root / ".eventsync")
    for index in range(50):
        notices.write_notice(data, "s-par", f"n{index:02d}", f"2026-01-01T00:00:{index:02d}.000000Z change {index}")
    command = ["/bin/sh", "-c", project.hook_command]
    payload = b'{"session_id": "s-par", "hook_event_name": "UserPromptSubmit", "prompt": "x"}'
    environment = {**os.environ, "CLAUDE_PROJECT_DIR": str(project.root)}

    runs = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=environment)
            for _ in range(4)]
    outputs = [run.communicate(payload, timeout=30)[0] for run in runs]

    lines = [line for output in outputs for line in context_of(HookRun(0, output, b"")).splitlines()[1:]]
    assert sorted(lines) == sorted(f"- 2026-01-01T00:00:{index:02d}.000000Z change {index}" for index in range(50))
