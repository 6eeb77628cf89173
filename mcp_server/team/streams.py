"""Creating and checking the JetStream stream and consumers that team mode uses.

The relay and the JetStream event log call :func:`ensure_stream` on every
connection. It creates the stream with :meth:`TeamSettings.stream_config` when
it is missing. An existing stream is used as it is, because an operator may
have tuned it, but a stream without the project's subjects is rejected and
settings that weaken the relay's guarantees are logged as warnings.
:func:`ensure_consumer` creates or updates this machine's durable consumer.
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, StorageType, StreamInfo
from nats.js.errors import APIError, NotFoundError

from mcp_server import subjects
from mcp_server.errors import ConfigurationError
from mcp_server.team.settings import TeamSettings

__all__ = ["ensure_consumer", "ensure_stream"]

logger = logging.getLogger(__name__)


async def ensure_stream(js: JetStreamContext, settings: TeamSettings) -> StreamInfo:
    """Return the stream's info, creating the stream if it does not exist.

    Raises:
        ConfigurationError: the stream exists without the project's subjects, or another stream owns them.
        nats.errors.Error: the server did not answer.
    """
    try:
        info = await js.stream_info(settings.stream)
    except NotFoundError:
        return await _create_stream(js, settings)

    _check_subjects(info, settings)
    _warn_about_weaker_settings(info, settings)
    return info


async def _create_stream(js: JetStreamContext, settings: TeamSettings) -> StreamInfo:
    config = settings.stream_config()
    try:
        info = await js.add_stream(config)
    except APIError as exc:
        raise ConfigurationError(
            f"cannot create JetStream stream {settings.stream!r} for subjects {config.subjects}: {exc.description or exc}; "
            "if another stream already holds these subjects, set EVENTSYNC_NATS_STREAM to its name"
        ) from exc
    logger.info(
        "created JetStream stream %s (subjects %s, %d replica(s), file storage, max age %.0f s, duplicate window %.0f s)",
        settings.stream, config.subjects, settings.replicas, settings.max_age, settings.duplicate_window,
    )
    return info


def _check_subjects(info: StreamInfo, settings: TeamSettings) -> None:
    configured = list(info.config.subjects or [])
    samples = (settings.subject("file.saved"), settings.subject("project.progress.updated"))
    if not all(any(subjects.matches(pattern, sample) for pattern in configured) for sample in samples):
        raise ConfigurationError(
            f"JetStream stream {settings.stream!r} has subjects {configured}, which do not cover {settings.project_filter!r}; "
            f"add '{settings.subject_prefix}.>' to the stream or set EVENTSYNC_NATS_STREAM to the stream that holds it"
        )


def _warn_about_weaker_settings(info: StreamInfo, settings: TeamSettings) -> None:
    config = info.config
    if config.storage is not None and config.storage != StorageType.FILE:
        logger.warning(
            "JetStream stream %s uses %s storage: a NATS restart loses its events; recreate it with file storage",
            settings.stream, config.storage,
        )
    window = config.duplicate_window or 0.0
    if window < settings.duplicate_window:
        logger.warning(
            "JetStream stream %s keeps message ids for %.0f s, less than the %.0f s eventsync chooses: an event "
            "republished after a longer outage is stored twice in the stream (each local log still stores it once)",
            settings.stream, window, settings.duplicate_window,
        )


async def ensure_consumer(js: JetStreamContext, settings: TeamSettings, *, recreate: bool = False) -> ConsumerInfo:
    """Create or update this machine's durable pull consumer and return its info.

    ``recreate`` deletes the consumer first, so the machine reads the whole
    stream again; the local log skips the events it already holds.

    Raises:
        ConfigurationError: the existing consumer cannot take the new configuration.
        nats.errors.Error: the server did not answer.
    """
    if recreate:
        try:
            await js.delete_consumer(settings.stream, settings.durable_name)
            logger.info("deleted consumer %s to read stream %s again", settings.durable_name, settings.stream)
        except NotFoundError:
            pass
    try:
        return await js.add_consumer(settings.stream, settings.consumer_config())
    except NotFoundError:
        raise
    except APIError as exc:
        raise ConfigurationError(
            f"cannot create or update consumer {settings.durable_name!r} on stream {settings.stream!r}: "
            f"{exc.description or exc}; run 'eventsync relay --resync' to recreate it"
        ) from exc
