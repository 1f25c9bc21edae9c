"""Capture times a service believes: within a window around now.

A camera clock set to year 9999 would otherwise pin its faces to the top of every "newest first" list
and a camera's last-seen for good; one set to year 1 cannot even be stored. Naive times are UTC.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_MAX_FUTURE_S = 600.0  # camera clocks drift; ten minutes ahead is still a clock, not an attack
DEFAULT_MAX_AGE_S = 365 * 86400.0  # an edge's outbox can hold faces through long cloud outages


class CaptureTimeError(ValueError):
    """A capture time outside the accepted window (or not representable at all)."""


@dataclass(frozen=True)
class CaptureWindow:
    max_future_s: float = DEFAULT_MAX_FUTURE_S
    max_age_s: float = DEFAULT_MAX_AGE_S

    def check_ms(self, captured_ms: int, now_ms: int | None = None) -> int:
        """`captured_ms` (Unix ms) if inside the window; CaptureTimeError otherwise."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if captured_ms > now_ms + self.max_future_s * 1000:
            raise CaptureTimeError(f"captured_at is more than {self.max_future_s:g} s in the future")
        if captured_ms < now_ms - self.max_age_s * 1000:
            raise CaptureTimeError(f"captured_at is more than {self.max_age_s:g} s in the past")
        return captured_ms

    def check(self, captured_at: datetime, now: datetime | None = None) -> datetime:
        """`captured_at` as an aware UTC datetime if inside the window (naive: UTC); CaptureTimeError otherwise."""
        if captured_at.tzinfo is None:
            captured_at = captured_at.replace(tzinfo=UTC)
        try:
            captured_ms = int(captured_at.timestamp() * 1000)
        except (OverflowError, ValueError, OSError) as exc:  # e.g. 0001-01-01T00:00+01:00 is before year 1 UTC
            raise CaptureTimeError("captured_at is out of range") from exc
        now_ms = None if now is None else int(now.timestamp() * 1000)
        self.check_ms(captured_ms, now_ms)
        return captured_at.astimezone(UTC)


def timestamp_ms(seconds: int, nanos: int) -> int:
    """A protobuf Timestamp's Unix ms, without protobuf's own conversions (which raise on years past 9999)."""
    return seconds * 1000 + nanos // 1_000_000
