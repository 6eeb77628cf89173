"""Project configuration: one validated settings object read from TOML.

Settings live in two places, both optional:

1. ``[tool.eventsync]`` in the project's ``pyproject.toml``: committed with the
   code, so the whole team shares it;
2. ``.eventsync/config.toml`` under the project root: git-ignored (the
   ``.eventsync`` folder is), so it contains one machine's overrides.

When both exist, each top-level key (``strict_types``, ``modules``,
``consumers``, ``webhooks``, ``retention``, ``schema``) is taken whole from
``.eventsync/config.toml`` if it sets it, else from ``pyproject.toml``; tables
and arrays are not merged key by key. The file stays at the project root even
when ``EVENTSYNC_HOME`` moves the data folder, because configuration belongs
to the project, not to where its log is stored.

Validation uses pydantic, and every problem is reported as
``<file>: <key path>: <what is wrong with which value>; <the fix>``. The
runtime reads the result; nothing here touches the log.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator

from mcp_server import subjects
from mcp_server.consumers import DEFAULT_HANDLER_TIMEOUT
from mcp_server.errors import ConfigurationError, InvalidEventError

__all__ = [
    "CONFIG_FILE_NAME",
    "ConsumersConfig",
    "EventsyncConfig",
    "LoadedConfig",
    "ModulesConfig",
    "RetentionRule",
    "SchemaConfig",
    "WebhookConfig",
    "load_config",
    "parse_config",
]

CONFIG_FILE_NAME = "config.toml"
"""Name of the local settings file inside the project's ``.eventsync`` folder."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODULE_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OBJECT_PATH = re.compile(r"[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModulesConfig(_Section):
    """Module selection: extra modules to load, and built-in or installed ones to switch off."""

    load: tuple[str, ...] = Field(
        default=(), description="Extra modules as 'package.module:attribute', loaded in every eventsync process."
    )
    disable: tuple[str, ...] = Field(default=(), description="Names of built-in or installed modules not to run.")
    entry_points: StrictBool = Field(
        default=True, description="Load modules that installed packages declare in the 'eventsync.modules' group."
    )

    @field_validator("load")
    @classmethod
    def _check_load(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not _OBJECT_PATH.fullmatch(value):
                raise ValueError(
                    f"invalid module reference {value!r}; use 'package.module' or 'package.module:attribute'"
                )
        return values

    @field_validator("disable")
    @classmethod
    def _check_disable(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not _MODULE_NAME.fullmatch(value):
                raise ValueError(
                    f"invalid module name {value!r}; use a module name as 'eventsync modules' lists it, "
                    "for example 'context'"
                )
        return values


class ConsumersConfig(_Section):
    """Settings of the durable modules (projections), which every eventsync process runs."""

    timeout_seconds: float = Field(
        default=DEFAULT_HANDLER_TIMEOUT,
        ge=0,
        le=3600,
        description="Time limit of one attempt at one event (prepare and apply together), in seconds; 0 turns it off. "
        "An attempt over the limit is retried, and the event is parked after the last attempt.",
    )


class WebhookConfig(_Section):
    """One HTTP endpoint that receives the events matching its patterns."""

    url: str = Field(description="http:// or https:// address that receives a POST per event.")
    events: tuple[str, ...] = Field(description="Type patterns to deliver, for example ['task.>', 'file.saved'].")
    secret_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the HMAC secret; the secret itself never goes in a file.",
    )
    max_attempts: int = Field(default=5, ge=1, le=50, description="Delivery attempts before integration.failed.")
    timeout_seconds: float = Field(default=10.0, gt=0, le=300, description="Time limit of one attempt, in seconds.")
    backoff_seconds: float = Field(default=1.0, ge=0, le=3600, description="Wait before the first retry, in seconds.")
    backoff_max_seconds: float = Field(default=300.0, ge=0, le=86400, description="Maximum wait between retries, in seconds.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"invalid URL {value!r}; use http:// or https://")
        if not parts.hostname:
            raise ValueError(f"invalid URL {value!r}: it names no host; write it as https://host/path")
        if parts.username or parts.password:
            raise ValueError(
                f"invalid URL {value!r}: it carries credentials; put the secret in the variable named by secret_env"
            )
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError:
            raise ValueError(f"invalid URL {value!r}: the port is not a number from 1 to 65535") from None
        return value

    @field_validator("events")
    @classmethod
    def _check_events(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if not values:
            raise ValueError("no event patterns; list at least one, for example ['task.>'] or ['>'] for every event")
        for value in values:
            try:
                subjects.validate_pattern(value)
            except InvalidEventError as exc:
                raise ValueError(str(exc)) from None
        return values

    @field_validator("secret_env")
    @classmethod
    def _check_secret_env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            # Do not echo the value: someone may have pasted the secret itself here.
            raise ValueError(
                "invalid environment variable name (value not shown in case it is the secret itself); "
                "set secret_env to the variable's name, for example 'EVENTSYNC_WEBHOOK_SECRET', and export the "
                "secret in that variable"
            )
        return value

    @model_validator(mode="after")
    def _check_backoff(self) -> WebhookConfig:
        if self.backoff_max_seconds < self.backoff_seconds:
            raise ValueError(
                f"backoff_max_seconds ({self.backoff_max_seconds:g}) is below backoff_seconds "
                f"({self.backoff_seconds:g}); raise backoff_max_seconds"
            )
        return self


class RetentionRule(_Section):
    """How long events of matching types stay in the log; the log's retention task applies the rules."""

    type: str = Field(description="Type pattern the rule applies to, for example 'file.saved' or 'touchpoint.*'.")
    max_age_days: float | None = Field(default=None, gt=0, description="Delete matching events older than this.")
    max_count: int | None = Field(default=None, gt=0, description="Keep at most this many matching events.")
    keep_latest_per: str | None = Field(
        default=None, description="Payload field; the newest event for each of its values is always kept."
    )

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        try:
            return subjects.validate_pattern(value)
        except InvalidEventError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("keep_latest_per")
    @classmethod
    def _check_field(cls, value: str | None) -> str | None:
        if value is not None and not _FIELD_NAME.fullmatch(value):
            raise ValueError(f"invalid payload field name {value!r}; use a top-level payload key such as 'path'")
        return value

    @model_validator(mode="after")
    def _check_limit(self) -> RetentionRule:
        if self.max_age_days is None and self.max_count is None:
            raise ValueError("the rule sets no limit; add max_age_days, max_count or both")
        return self


class SchemaConfig(_Section):
    """Location of the generated Markdown reference of event types."""

    reference: str | None = Field(
        default=None,
        description="Project-relative path of the Markdown reference; default: events.md in the data folder.",
    )

    @field_validator("reference")
    @classmethod
    def _check_reference(cls, value: str | None) -> str | None:
        if value is not None and (os.path.isabs(value) or ".." in value.replace("\\", "/").split("/")):
            raise ValueError(f"invalid path {value!r}; use a path inside the project, such as 'docs/events.md'")
        return value


class EventsyncConfig(_Section):
    """Every setting of one project."""

    strict_types: StrictBool = Field(
        default=False, description="Reject emitted events whose type no loaded module or catalog entry declares."
    )
    modules: ModulesConfig = ModulesConfig()
    consumers: ConsumersConfig = ConsumersConfig()
    webhooks: tuple[WebhookConfig, ...] = ()
    retention: tuple[RetentionRule, ...] = ()
    schema_: SchemaConfig = Field(default=SchemaConfig(), alias="schema")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """The validated settings and the files they came from."""

    settings: EventsyncConfig
    sources: tuple[str, ...] = ()
    origin: Mapping[str, str] = field(default_factory=dict)
    """Top-level key → file that supplied it."""


def _format_location(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _model_at(location: tuple[int | str, ...]) -> type[BaseModel] | None:
    """Return the settings model that contains the last key of ``location``, for listing its known keys."""
    model: Any = EventsyncConfig
    for part in location[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        if part not in fields:
            return None
        annotation = fields[part].annotation
        while get_origin(annotation) is not None:
            arguments = [arg for arg in get_args(annotation) if arg is not type(None) and arg is not Ellipsis]
            annotation = arguments[0] if arguments else None
        model = annotation
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _describe(error: Mapping[str, Any]) -> str:
    location = tuple(error["loc"])
    where = _format_location(location)
    kind = error["type"]
    if kind == "missing":
        return f"{where}: missing; add it"
    if kind == "extra_forbidden":
        model = _model_at(location)
        known = sorted(info.alias or name for name, info in model.model_fields.items()) if model else []
        hint = f" (known keys: {', '.join(known)})" if known else ""
        return f"{where}: unknown key; remove it or fix its spelling{hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        return f"{where}: {message}"
    return f"{where}: invalid value {error.get('input')!r}: {message}"


def parse_config(data: Mapping[str, Any], *, source: str = "configuration") -> EventsyncConfig:
    """Validate settings read from TOML.

    Raises:
        ConfigurationError: a key is unknown or a value is invalid; the message lists every problem.
    """
    try:
        return EventsyncConfig.model_validate(dict(data))
    except ValidationError as exc:
        problems = "\n  ".join(_describe(error) for error in exc.errors())
        raise ConfigurationError(f"invalid eventsync settings in {source}:\n  {problems}") from None


def _read_toml(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path!r}: {exc.strerror or exc}; check its permissions") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{path}: invalid TOML: {exc}; fix the syntax") from exc


def _pyproject_section(path: str) -> dict[str, Any] | None:
    document = _read_toml(path)
    if document is None:
        return None
    section = document.get("tool", {}).get("eventsync")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigurationError(f"{path}: tool.eventsync must be a table; write it as [tool.eventsync]")
    return section


def load_config(root: str) -> LoadedConfig:
    """Read and validate the settings of the project at ``root``; defaults when neither file sets any.

    Raises:
        ConfigurationError: a file is unreadable, not valid TOML, or contains invalid settings.
    """
    shared_path = os.path.join(root, "pyproject.toml")
    local_path = os.path.join(root, ".eventsync", CONFIG_FILE_NAME)
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    sources: list[str] = []
    for path, section in ((shared_path, _pyproject_section(shared_path)), (local_path, _read_toml(local_path))):
        if section is None:
            continue
        sources.append(path)
        for key, value in section.items():
            merged[key] = value
            origin[key] = path

    try:
        settings = EventsyncConfig.model_validate(merged)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            top = error["loc"][0] if error["loc"] else ""
            lines.append(f"{origin.get(str(top), sources[-1] if sources else root)}: {_describe(error)}")
        raise ConfigurationError("invalid eventsync settings:\n  " + "\n  ".join(lines)) from None
    return LoadedConfig(settings=settings, sources=tuple(sources), origin=origin)
