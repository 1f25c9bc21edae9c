"""The id rules every service checks the same way: face, camera, edge, track and analyzer ids are
1-64 characters of [A-Za-z0-9_.-] (safe in Redis key names, file names and URLs); identities and
erasures are 32 lowercase hex digits (uuid4().hex); API keys 16.

The patterns are strings, as FastAPI's and pydantic's `pattern=` take them; `ID` is the compiled one.
"""

from __future__ import annotations

import hashlib
import re

ID_CHARS = "[A-Za-z0-9_.-]"
ID_MAX_LEN = 64
ID_BODY = f"{ID_CHARS}{{1,{ID_MAX_LEN}}}"  # unanchored: for patterns built from it
ID_PATTERN = f"^{ID_BODY}$"
ID = re.compile(ID_PATTERN)
ID_RULE = f"1-{ID_MAX_LEN} characters of {ID_CHARS}"  # what an error message says the rule is

HEX32_PATTERN = r"^[0-9a-f]{32}$"  # identity and erasure ids
KEY_ID_PATTERN = r"^[0-9a-f]{16}$"  # API key ids


def is_id(value: str) -> bool:
    return ID.match(value) is not None


def audit_safe(value: str, pattern: str = ID_PATTERN) -> str:
    """`value` if it follows `pattern` (the id rule by default), else `invalid:<sha256 prefix>`: what a
    client sent in a path or form never reaches the audit trail raw (no control characters, no 12 KB
    ids), yet two attempts with the same bad id still read as the same one."""
    if not value or re.match(pattern, value):
        return value
    return f"invalid:{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"
