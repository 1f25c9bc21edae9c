"""One time format in JSON: RFC 3339 in UTC with milliseconds (`2026-12-07T17:12:09.123Z`).

Responses name such fields `*_at`. Fields named `*_ms` (milliseconds since the Unix epoch) stay
where docs/api.md lists them, for clients that compute with times; both say the same instant.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BeforeValidator


def rfc3339_ms(ms: int | None) -> str | None:
    """`ms` since the epoch as RFC 3339, UTC, millisecond precision; None stays None."""
    if ms is None:
        return None
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def _not_a_number(value: object) -> object:
    # Pydantic reads a bare number as seconds since 1970: `since: 0` would silently mean 1970-01-01 and
    # an erasure of everything. A time in this API is written out.
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("a time is written as RFC 3339 / ISO 8601 (e.g. 2026-12-07T17:12:09Z), not a number")
    return value


_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")

Timestamp = Annotated[datetime, BeforeValidator(_not_a_number)]
"""A time as input: RFC 3339 / ISO 8601 text (no zone: UTC); numbers are refused."""
