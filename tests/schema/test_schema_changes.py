"""Schema changes on a real log: schema.updated, its reactions, upcasting on read, saved queries and strict mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import Project
from mcp_server.cli import main
from mcp_server.errors import ConfigurationError, InvalidEventError
from mcp_server.events import PAYLOAD_VERSIONS, make_event
from mcp_server.runtime import Runtime
from mcp_server.schema.queries import PayloadFields
from mcp_server.schema.registry import REGISTRY, SchemaRegistry
from mcp_server.store.base import EventFilter, StoredEvent


_opened: list[Runtime] = []


@pytest.fixture(autouse=True)
def _forget_test_modules() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()
    for owner in ("widgets", "widget-listener"):
        REGISTRY.unregister_owner(owner)


def _configure(project: Project, *modules: str, extra: str = "") -> None:
    listed = ", ".join(f'"schema_modules:{name}"' for name in modules)
    (project.root / ".eventsync").mkdir(exist_ok=True)
    (project.root / ".eventsync" / "config.toml").write_text(
        f"{extra}\n[modules]\nload = [{listed}]\n", encoding="utf-8"
    )


def _open(project: Project, *modules: str, extra: str = "") -> Runtime:
    """Close the runtime opened before (it holds consumer leases) and open one with ``modules``."""
    while _opened:
        _opened.pop().close()
    _configure(project, *modules, extra=extra)
    _opened.append(project.runtime())
    return _opened[-1]


def _events(runtime: Runtime, pattern: str) -> list[StoredEvent]:
    return runtime.log.query(EventFilter(types=(pattern,)), limit=500, descending=False).events


def _change(event: StoredEvent, kind: str, event_type: str) -> dict:
    return next(item for item in event.payload[kind] if item["type"] == event_type)


def test_first_sync_adds_then_quiet(project: Project) -> None:
    runtime = _open(project)

    first = runtime.schema.sync()
    second = runtime.schema.sync()

    assert first is not None
    added = {item["type"] for item in first.payload["added"]}
    assert {"file.saved", "touchpoint.added", "schema.updated", "task.created"} <= added
    assert first.payload["schemas"]["file.saved"]["json_schema"]["required"] == ["path"]
    assert second is None


def test_version_change_reported(project: Project) -> None:
    _open(project, "WIDGETS_V1").schema.sync()

    runtime = _open(project, "WIDGETS_V2")
    updated = runtime.schema.sync()

    assert updated is not None
    change = _change(updated, "modified", "widget.made")
    assert (change["old_version"], change["new_version"]) == (1, 2)
    assert change["added_fields"] == ["color", "size"]
    assert change["removed_fields"] == ["colour", "legacy"]
    assert updated.payload["added"] == []
    assert updated.payload["deleted"] == []
    assert runtime.schema.stored()["widget.made"].version == 2


def test_back_and_forth_reported_each_time(project: Project) -> None:
    reported = []
    for name in ("WIDGETS_V1", "WIDGETS_V2", "WIDGETS_V1", "WIDGETS_V2"):
        updated = _open(project, name).schema.sync()
        assert updated is not None
        reported.append(updated.id)

    assert len(set(reported)) == 4


def test_old_events_read_in_current_version(project: Project) -> None:
    runtime = _open(project, "WIDGETS_V1")
    runtime.emit("widget.made", {"colour": "red", "legacy": 7}, source="test")
    unstamped = make_event("widget.made", {"colour": "blue"}, source="test")
    del unstamped["metadata"]["schema_version"]
    runtime.log.append([unstamped])

    runtime = _open(project, "WIDGETS_V2")
    page = runtime.query_events(EventFilter(types=("widget.made",)), descending=False)
    raw = _events(runtime, "widget.made")

    assert [event.payload for event in page.events] == [{"color": "red", "size": 1}, {"color": "blue", "size": 1}]
    assert [event.metadata["schema_version"] for event in page.events] == [2, 2]
    assert [event.metadata["upcast_from"] for event in page.events] == [1, 1]
    assert raw[0].payload == {"colour": "red", "legacy": 7}
    assert raw[0].metadata["schema_version"] == 1
    assert "schema_version" not in raw[1].metadata


def test_new_events_stamped_with_version(project: Project) -> None:
    runtime = _open(project, "WIDGETS_V2")

    stored = runtime.emit("widget.made", {"color": "green"}, source="test")

    assert stored is not None
    assert stored.metadata["schema_version"] == 2
    assert PAYLOAD_VERSIONS["widget.made"] == 2
    assert runtime.query_events(EventFilter(types=("widget.made",))).events[0].payload == {"color": "green"}


def test_where_filters_after_upcast(project: Project) -> None:
    runtime = _open(project, "WIDGETS_V1")
    for colour in ("red", "blue", "red"):
        runtime.emit("widget.made", {"colour": colour}, source="test")

    runtime = _open(project, "WIDGETS_V2")
    reds = runtime.query_events(EventFilter(types=("widget.made",)), where={"color": "red"}, limit=1)
    rest = runtime.query_events(EventFilter(types=("widget.made",)), where={"color": "red"}, cursor=reds.next_cursor)
    through_payload = runtime.query_events(EventFilter(types=("widget.made",), payload_equals=(("color", "blue"),)))

    assert reds.total == 2
    assert len(reds.events) == 1
    assert reds.next_cursor is not None
    assert len(rest.events) == 1
    assert rest.next_cursor is None
    assert [event.payload["color"] for event in through_payload.events] == ["blue"]


def test_unknown_where_field_rejected(project: Project) -> None:
    runtime = _open(project, "WIDGETS_V2")

    with pytest.raises(InvalidEventError) as raised:
        runtime.query_events(EventFilter(types=("widget.made",)), where={"colour": "red"})

    assert "unknown payload field 'colour' for widget.made; use one of: color, size" in str(raised.value)


def test_query_layer_refreshes_after_update(project: Project) -> None:
    _open(project, "WIDGETS_V1").schema.sync()
    runtime = _open(project, "WIDGETS_V2")
    # A registry without the widget models, as in a process that does not load the module.
    fields = PayloadFields(runtime.log, SchemaRegistry())
    before = fields.accepted(["widget.made"])

    runtime.schema.sync()
    after = fields.accepted(["widget.made"])

    assert before == {"colour", "legacy"}
    assert after == {"color", "size"}


def test_removed_field_breaks_saved_query(project: Project) -> None:
    runtime = _open(project, "WIDGETS_V1")
    runtime.schema.sync()
    runtime.schema.save_query("reds", ["widget.made"], {"colour": "red"})
    runtime.schema.save_query("sizes", ["widget.*"], {"legacy": 0})
    runtime.schema.save_query("paths", ["file.saved"], {"path": "a"})
    runtime.catch_up()

    runtime = _open(project, "WIDGETS_V2")
    updated = runtime.schema.sync()
    runtime.catch_up()
    reports = _events(runtime, "query.invalidated")

    assert updated is not None
    assert sorted((e.payload["query"], e.payload["field"]) for e in reports) == [("reds", "colour"), ("sizes", "legacy")]
    assert {e.payload["kind"] for e in reports} == {"saved"}
    assert {e.payload["schema_event_id"] for e in reports} == {updated.id}
    assert {(e.payload["old_version"], e.payload["new_version"]) for e in reports} == {(1, 2)}
    assert all(e.metadata["causation_id"] == updated.id for e in reports)


def test_deleted_type_breaks_subscription(project: Project) -> None:
    runtime = _open(project, "WIDGETS_V1", "LISTENER")
    runtime.modules.announce(runtime.log)
    runtime.schema.sync()
    runtime.catch_up()

    REGISTRY.unregister_owner("widgets")
    runtime = _open(project, "LISTENER")
    updated = runtime.schema.sync()
    runtime.catch_up()
    reports = _events(runtime, "query.invalidated")

    assert updated is not None
    assert _change(updated, "deleted", "widget.made")["new_version"] is None
    assert [(e.payload["query"], e.payload["kind"], e.payload["type"]) for e in reports] == [
        ("widget-listener", "subscription", "widget.made")
    ]
    assert "widget.made" not in runtime.schema.stored()


def test_reference_rewritten_after_update(project: Project) -> None:
    runtime = _open(project, "WIDGETS_V1", extra='[schema]\nreference = "docs/events.md"')
    runtime.schema.sync()
    runtime.catch_up()
    reference = project.root / "docs" / "events.md"
    first = reference.read_text(encoding="utf-8")

    runtime = _open(project, "WIDGETS_V2", extra='[schema]\nreference = "docs/events.md"')
    runtime.schema.sync()
    runtime.catch_up()
    second = reference.read_text(encoding="utf-8")

    assert "| `colour` | string | yes |" in first
    assert "Version 2, owned by widgets." in second
    assert "| `color` | string | yes |" in second
    assert "| `colour` |" not in second


def test_rebuild_restores_schema_table(project: Project) -> None:
    runtime = _open(project, "WIDGETS_V1")
    runtime.schema.sync()
    runtime = _open(project, "WIDGETS_V2")
    runtime.schema.sync()
    runtime.catch_up()

    runtime.rebuild("schema")

    assert runtime.schema.stored()["widget.made"].version == 2
    assert "file.saved" in runtime.schema.stored()


def test_strict_types_rejects_unknown(project: Project) -> None:
    runtime = _open(project, "WIDGETS_V2", extra="strict_types = true")

    with pytest.raises(InvalidEventError) as unknown:
        runtime.emit("note.added", {}, source="test")
    with pytest.raises(InvalidEventError) as invalid:
        runtime.emit("widget.made", {"size": 3}, source="test")

    assert "unknown event type 'note.added': strict_types is on" in str(unknown.value)
    assert "invalid payload for 'widget.made'" in str(invalid.value)
    assert "color" in str(invalid.value)
    assert runtime.emit("widget.made", {"color": "red"}, source="test") is not None
    assert runtime.emit("file.saved", {"path": "a.py"}, source="test") is not None


def test_lenient_by_default(project: Project) -> None:
    runtime = _open(project)

    assert runtime.emit("note.added", {"anything": 1}, source="test") is not None


def test_registry_rejects_foreign_owner() -> None:
    registry = SchemaRegistry()
    from schema_modules import WidgetMadeV1

    registry.register("widget.made", WidgetMadeV1, owner="widgets")

    with pytest.raises(ConfigurationError) as raised:
        registry.register("widget.made", WidgetMadeV1, owner="gadgets")

    assert "registered by module 'widgets'" in str(raised.value)


def test_registry_rejects_upcaster_past_version() -> None:
    from schema_modules import WidgetMadeV2

    with pytest.raises(ConfigurationError) as raised:
        SchemaRegistry().register("widget.made", WidgetMadeV2, owner="widgets", upcasters={2: dict})

    assert "starts at version 2, but the model is at version 2" in str(raised.value)


def test_missing_upcaster_keeps_payload(project: Project) -> None:
    from schema_modules import WidgetMadeV2

    registry = SchemaRegistry()
    registry.register("widget.made", WidgetMadeV2, owner="widgets")
    stored = _open(project).log.append([{
        "id": "01900000-0000-7000-8000-000000000001", "type": "widget.made", "timestamp": "2026-01-01T00:00:00Z",
        "source": "test", "payload": {"colour": "red"}, "metadata": {},
    }])[0]

    assert registry.upcast(stored) is stored


def test_schema_markdown_command(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _configure(project, "WIDGETS_V2")

    status = main(["schema", "--markdown", "--project", str(project.root)])
    output = capsys.readouterr().out

    assert status == 0
    assert output.startswith("# Event types\n")
    assert "## file.saved" in output
    assert "| `path` | string | yes |" in output
    assert "## widget.made" in output


def test_query_commands(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    runtime = _open(project)
    runtime.emit("file.saved", {"path": "src/a.py", "tool": "Write"}, source="test")
    runtime.emit("file.saved", {"path": "src/b.py", "tool": "Edit"}, source="test")
    runtime.close()
    root = str(project.root)

    saved = main(["query", "save", "writes", "--type", "file.saved", "--where", "tool=Write", "--project", root])
    rejected = main(["query", "save", "typo", "--type", "file.saved", "--where", "tool_name=Write", "--project", root])
    capsys.readouterr()
    ran = main(["query", "run", "writes", "--json", "--project", root])
    output = capsys.readouterr().out
    deleted = main(["query", "delete", "writes", "--project", root])
    missing = main(["query", "run", "writes", "--project", root])

    assert (saved, rejected, ran, deleted, missing) == (0, 1, 0, 0, 1)
    assert '"path": "src/a.py"' in output
    assert "src/b.py" not in output
    assert "no saved query named 'writes'" in capsys.readouterr().err
