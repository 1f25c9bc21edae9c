"""Redis's password from a file (a compose secret), so it never sits in an environment variable."""

from __future__ import annotations

from pathlib import Path


def redis_password(path: Path | None) -> dict[str, str]:
    """Keyword arguments for redis.Redis.from_url: the file's password, or nothing (the URL's, if any)."""
    if path is None:
        return {}
    try:
        password = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"redis password file {path}: {exc.strerror or exc}") from exc
    if not password:
        raise ValueError(f"redis password file {path} is empty")
    return {"password": password}
