"""The edge's admin token: a bearer token for what only the operator (and Prometheus) may read: the
detailed status (camera ids, live head counts, upload errors), /metrics, /docs and /openapi.json.

Cameras never hold it; their tokens only post frames. The token lives in EDGE_ADMIN_TOKEN_FILE
(default <data_dir>/admin_token); a missing file is made at first start with a new random token, mode
0600, so a fresh edge is never open. Read at start: to rotate it, write a new token and restart.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from fastapi import HTTPException, Request

MIN_TOKEN_CHARS = 32  # a token typed by hand must still be hard to guess


class AdminTokenError(ValueError):
    """The admin token file cannot be read or holds no usable token."""


def load_admin_token(path: Path) -> str:
    """The token in `path`, made (random, mode 0600) when the file does not exist yet."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise AdminTokenError(f"EDGE_ADMIN_TOKEN_FILE {path}: cannot create it ({exc.strerror})") from exc
    else:
        with os.fdopen(fd, "w") as out:
            out.write(f"fea_{secrets.token_urlsafe(32)}\n")
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AdminTokenError(f"EDGE_ADMIN_TOKEN_FILE {path}: cannot read it ({exc})") from exc
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise AdminTokenError(f"EDGE_ADMIN_TOKEN_FILE {path}: expected one token of at least "
                              f"{MIN_TOKEN_CHARS} characters without spaces")
    return token


def bearer(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for any other form."""
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class AdminAuth:
    """FastAPI dependency: 401 unless the request carries the admin token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def __call__(self, request: Request) -> None:
        presented = bearer(request.headers.get("authorization", "")) or ""
        if not hmac.compare_digest(presented.encode(), self._token):
            raise HTTPException(401, "admin token missing or wrong (Authorization: Bearer <EDGE_ADMIN_TOKEN_FILE's "
                                "token>)", headers={"WWW-Authenticate": "Bearer"})
