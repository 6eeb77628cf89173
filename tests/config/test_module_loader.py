"""Module loading: built-ins, settings, the eventsync.modules entry points of an installed package, and module.loaded."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from conftest import Project
from mcp_server.errors import ConfigurationError
from mcp_server.events import make_event
from mcp_server.runtime import Runtime
from mcp_server.schema.registry import REGISTRY
from mcp_server.store.base import EventFilter, StoredEvent
from thirdparty_install import install_example

TESTS = Path(__file__).resolve().parents[1]
EXAMPLE_OWNERS = ("example-notes", "example-counter", "widgets")


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_example(tmp_path_factory)


@pytest.fixture
def installed(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make the example package's entry points visible to this process, as if pip had installed it."""
    monkeypatch.syspath_prepend(str(example_site))
    yield example_site
    for owner in EXAMPLE_OWNERS:
        REGISTRY.unregister_owner(owner)


def _settings(project: Project, text: str) -> None:
    (project.root / ".eventsync").mkdir(exist_ok=True)
    (project.root / ".eventsync" / "config.toml").write_text(text, encoding="utf-8")


def _types(runtime: Runtime, pattern: str) -> list[StoredEvent]:
    return runtime.log.query(EventFilter(types=(pattern,)), limit=500, descending=False).events


def test_builtins_listed(project: Project) -> None:
    runtime = project.runtime()
    modules = {module.name: module for module in runtime.modules.modules}

    assert {"touchpoints", "search", "context", "schema"} <= modules.keys()
    assert modules["touchpoints"].kind == "durable"
    assert modules["touchpoints"].source == "builtin"
    assert modules["touchpoints"].payload_types["touchpoint.added"] == 1
    assert "webhooks" not in modules
    runtime.close()


def test_entry_points_loaded(project: Project, installed: Path) -> None:
    runtime = project.runtime()
    notes = runtime.modules.by_name("example-notes")
    counter = runtime.modules.by_name("example-counter")
    runtime.emit("file.saved", {"path": "src/a.py"}, source="test")
    runtime.emit("file.saved", {"path": "src/a.py"}, source="test")
    runtime.catch_up()
    counts = runtime.log.connection.execute("SELECT path, saves FROM example_save_counts").fetchall()

    assert notes is not None and counter is not None
    assert (notes.kind, notes.source, notes.version) == ("local", "entry_point", "1.2.0")
    assert notes.subscriptions == ("file.saved",)
    assert notes.payload_types == {"note.recorded": 2}
    assert (counter.kind, counter.version) == ("durable", "1.2.0")
    assert counts == [("src/a.py", 2)]
    runtime.close()


def test_disable_skips_entry_point(project: Project, installed: Path) -> None:
    _settings(project, '[modules]\ndisable = ["example-counter"]\n')
    runtime = project.runtime()

    assert runtime.modules.by_name("example-counter") is None
    assert runtime.modules.by_name("example-notes") is not None
    assert "example-counter" not in {projection.name for projection in runtime.projections}
    runtime.close()


def test_entry_points_can_be_ignored(project: Project, installed: Path) -> None:
    _settings(project, "[modules]\nentry_points = false\n")
    runtime = project.runtime()

    assert runtime.modules.by_name("example-notes") is None
    runtime.close()


def test_module_loaded_once_per_change(project: Project, installed: Path) -> None:
    announced = []
    for modules in ("WIDGETS_V1", "WIDGETS_V1", "WIDGETS_V2", "WIDGETS_V1"):
        _settings(project, f'[modules]\nload = ["schema_modules:{modules}"]\n')
        runtime = project.runtime()
        announced.append([event.payload["name"] for event in runtime.modules.announce(runtime.log)])
        runtime.close()
        REGISTRY.unregister_owner("widgets")

    runtime = project.runtime()
    widgets = [event for event in _types(runtime, "module.loaded") if event.payload["name"] == "widgets"]
    assert "example-notes" in announced[0]
    assert "touchpoints" in announced[0]
    assert announced[1:] == [[], ["widgets"], ["widgets"]]
    assert [event.payload["version"] for event in widgets] == ["1.0", "2.0", "1.0"]
    assert widgets[0].payload["payload_types"] == {"widget.made": 1}
    assert widgets[1].payload["payload_types"] == {"widget.made": 2}
    assert widgets[0].payload["kind"] == "local"
    assert widgets[0].payload["source"] == "config"
    runtime.close()


def test_bad_reference_names_setting(project: Project) -> None:
    _settings(project, '[modules]\nload = ["json", "nowhere_at_all.module:thing"]\n')

    with pytest.raises(ConfigurationError) as raised:
        project.runtime()

    assert "modules.load[0]" in str(raised.value)
    assert "has no MODULE attribute" in str(raised.value)


def test_missing_module_names_setting(project: Project) -> None:
    _settings(project, '[modules]\nload = ["nowhere_at_all.module:thing"]\n')

    with pytest.raises(ConfigurationError) as raised:
        project.runtime()

    assert "cannot load module 'nowhere_at_all.module:thing' from modules.load[0]" in str(raised.value)


def test_disabling_needed_builtin_rejected(project: Project) -> None:
    _settings(project, '[modules]\ndisable = ["touchpoints"]\n')

    with pytest.raises(ConfigurationError) as raised:
        project.runtime()

    assert "switches off touchpoints, which module 'search' reads" in str(raised.value)


def test_disabling_leaf_builtin(project: Project) -> None:
    _settings(project, '[modules]\ndisable = ["context"]\n')
    runtime = project.runtime()

    assert "context" not in {projection.name for projection in runtime.projections}
    assert runtime.modules.by_name("context") is None
    runtime.close()


# -- in the MCP server -------------------------------------------------------------------


async def _call(client: Client, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments or {})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_third_party_module_in_server(project: Project, example_site: Path, anyio_backend: str) -> None:
    old_note = make_event("note.recorded", {"file": "src/old.py", "note": "written long ago"}, source="test")
    old_note["metadata"]["schema_version"] = 1
    runtime = project.runtime()
    runtime.log.append([old_note])
    runtime.close()
    env = {
        "CLAUDE_PROJECT_DIR": str(project.root),
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(example_site)]),
        "EVENTSYNC_MODULES": "support_modules:looping",
        "XDG_STATE_HOME": os.environ.get("XDG_STATE_HOME", ""),
    }
    parameters = StdioServerParameters(
        command=sys.executable, args=["-m", "mcp_server", "serve"], env=env, cwd=str(project.root)
    )

    with anyio.fail_after(60):
        async with Client(parameters, mode="legacy") as client:
            project.write("src/new.py", "x = 1\n")
            project.run_hook({"session_id": "s-notes", "hook_event_name": "PostToolUse", "tool_name": "Write",
                              "tool_input": {"file_path": str(project.root / "src" / "new.py")},
                              "tool_use_id": "toolu_notes"})
            while (notes := await _call(client, "query_events", {"type": "note.recorded", "order": "asc"}))["total"] < 2:
                await anyio.sleep(0.05)
            loaded = await _call(client, "query_events", {"type": "module.loaded", "limit": 100})
            reference = await client.read_resource("eventsync://schema/events.md")

    by_name = {event["payload"]["name"]: event["payload"] for event in loaded["events"]}
    old, new = notes["events"]
    assert old["payload"] == {"path": "src/old.py", "note": "written long ago", "words": 3}
    assert old["metadata"]["schema_version"] == 2
    assert new["payload"] == {"path": "src/new.py", "note": "saw src/new.py", "words": 2}
    assert new["source"] == "module:example-notes"
    assert new["metadata"]["schema_version"] == 2
    assert by_name["example-notes"]["source"] == "entry_point"
    assert by_name["example-notes"]["kind"] == "local"
    assert by_name["support_modules:looping"]["source"] == "env"
    assert by_name["support_modules:looping"]["subscriptions"] == ["cyc.*", "loop.self", "quux"]
    assert "## note.recorded" in reference.contents[0].text
    assert "Version 2, owned by example-notes." in reference.contents[0].text
