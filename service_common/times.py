"""One time format in JSON: RFC 3339 in UTC with milliseconds (`2026-12-07T17:12:09.123Z`).

Responses name such fields `*_at`. Fields named `*_ms` (milliseconds since the Unix epoch) stay
where docs/api.md lists them, for clients that compute with times; both say the same instant.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339_ms(ms: int | None) -> str | None:
    """`ms` since the epoch as RFC 3339, UTC, millisecond precision; None stays None."""
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"
