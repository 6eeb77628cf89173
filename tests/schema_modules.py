"""Test-only modules whose payload schema changes between versions, loaded through ``modules.load``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from mcp_server.modules.loader import EventsyncModule, ModuleContext
from mcp_server.store.base import StoredEvent


class WidgetMadeV1(BaseModel):
    """A widget was made (first version)."""

    colour: str
    legacy: int = 0


class WidgetMadeV2(BaseModel):
    """A widget was made: ``colour`` became ``color``, ``legacy`` was dropped and ``size`` added."""

    SCHEMA_VERSION: ClassVar[int] = 2

    color: str
    size: int = 1


def widget_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """Rename ``colour`` and drop ``legacy``."""
    return {"color": payload["colour"], "size": 1}


def _ignore(event: StoredEvent, context: ModuleContext) -> None:
    return None


WIDGETS_V1 = EventsyncModule(
    name="widgets", version="1.0", subscriptions=("widget.ordered",), emits=("widget.made",),
    payload_models={"widget.made": WidgetMadeV1}, handler=_ignore,
)

WIDGETS_V2 = EventsyncModule(
    name="widgets", version="2.0", subscriptions=("widget.ordered",), emits=("widget.made",),
    payload_models={"widget.made": WidgetMadeV2}, upcasters={"widget.made": {1: widget_v1_to_v2}}, handler=_ignore,
)

LISTENER = EventsyncModule(
    name="widget-listener", version="1.0", subscriptions=("widget.made",), handler=_ignore,
)
