"""Retention: removing old events from the log without losing anything a consumer still needs.

A :class:`RetentionRule` names event types and a limit: an age, a count, or
"keep only the newest event per value of a payload field" (for example the
latest ``file.saved`` per ``path`` once saves are older than 30 days).
:func:`apply_retention` never deletes an event that some durable consumer has
not processed yet: only positions at or below the lowest checkpoint are
candidates.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from mcp_server import clock, subjects
from mcp_server.errors import ConfigurationError
from mcp_server.store.sqlite import SQLiteEventLog

__all__ = ["RetentionRule", "apply_retention"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """A limit on how long, or how many, events of some types the log keeps."""

    type: str
    max_age_days: float | None = None
    max_count: int | None = None
    keep_latest_per: str | None = None

    def validate(self) -> None:
        """Check the rule.

        Raises:
            ConfigurationError: the pattern is invalid or the rule sets no limit.
        """
        try:
            subjects.validate_pattern(self.type)
        except Exception as exc:
            raise ConfigurationError(f"retention rule: {exc}") from exc
        if self.max_age_days is None and self.max_count is None:
            raise ConfigurationError(
                f"retention rule for {self.type!r} sets no limit; give max_age_days, max_count or both"
            )
        # A negative age would put the cutoff in the future and delete every processed event of the type.
        if self.max_age_days is not None and not (math.isfinite(self.max_age_days) and self.max_age_days > 0):
            raise ConfigurationError(
                f"retention rule for {self.type!r}: invalid max_age_days {self.max_age_days!r}; "
                "give a finite number of days greater than 0"
            )
        if self.max_count is not None and self.max_count < 1:
            raise ConfigurationError(
                f"retention rule for {self.type!r}: invalid max_count {self.max_count!r}; give a whole number of at least 1"
            )
        if self.keep_latest_per is not None and self.max_age_days is None:
            raise ConfigurationError(
                f"retention rule for {self.type!r}: keep_latest_per needs max_age_days (which events to thin out)"
            )


def apply_retention(log: SQLiteEventLog, rules: list[RetentionRule], *, consumers: list[str]) -> dict[str, int]:
    """Apply ``rules`` and return how many events each deleted, by rule type.

    ``consumers`` are the durable consumers whose progress protects events;
    every checkpoint in the database counts too.
    """
    checkpoints = log.checkpoints()
    positions = [checkpoints.get(name, 0) for name in consumers] + list(checkpoints.values())
    protect_after = min(positions) if positions else log.head()
    deleted: dict[str, int] = {}
    for rule in rules:
        rule.validate()
        count = 0
        if rule.max_age_days is not None:
            # An age reaching before 1970 keeps every event; the clamp keeps the cutoff representable.
            cutoff = clock.utc_timestamp(int(max(0.0, time.time() - rule.max_age_days * 86400) * 1_000_000_000))
            count += log.delete_events(
                (rule.type,), protect_after=protect_after, before=cutoff, keep_latest_per=rule.keep_latest_per
            )
        if rule.max_count is not None:
            count += log.delete_events((rule.type,), protect_after=protect_after, keep_latest=rule.max_count)
        deleted[rule.type] = deleted.get(rule.type, 0) + count
        logger.info("retention %s: deleted %d events at or below position %d", rule.type, count, protect_after)
    return deleted
