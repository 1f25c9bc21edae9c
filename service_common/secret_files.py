"""Secret files (keys, tokens, passwords) created 0600 from their first byte: created with that mode by
os.open, never written with the process umask and chmod-ed afterwards (a reader could open it between)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: bytes | str) -> None:
    """Create or replace `path` atomically with `data`, mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def create_private(path: Path, data: bytes | str) -> bool:
    """Write `data` to `path`, mode 0600, only if it does not exist (one writer wins); False if it did."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    return True


def append_private(path: Path, text: str) -> None:
    """Append `text` to `path`, creating it 0600 if missing."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.write(text)
