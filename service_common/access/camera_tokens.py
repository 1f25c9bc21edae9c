"""Per-camera tokens (the edge checks them): a camera proves it is the camera whose frames it posts.

The token file (EDGE_CAMERA_TOKENS_FILE) holds one `camera_id sha256-of-token` line per camera, or
`* sha256-of-token` for a fleet token any camera id may use (weaker: one leaked token speaks for every
camera). Tokens are random, shown once by `python -m edge_encoder tokens add CAMERA`, and stored only as
hashes. The file is re-read when it changes, so cameras are added and revoked without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
from pathlib import Path

from service_common.ids import ID_BODY, ID_RULE
from service_common.secret_files import append_private, write_private

log = logging.getLogger(__name__)
CAMERA_ID = re.compile(f"^({ID_BODY}|\\*)$")
DIGEST = re.compile(r"^[0-9a-f]{64}$")


class CameraTokenError(ValueError):
    pass


def new_camera_token() -> str:
    return f"fct_{secrets.token_urlsafe(32)}"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_camera(path: Path, camera_id: str) -> str:
    """A new token for `camera_id` (or `*`), its hash appended to the file; returns the token."""
    if not CAMERA_ID.match(camera_id):
        raise CameraTokenError(f"camera id must be {ID_RULE}, or * for a fleet token")
    token = new_camera_token()
    path.parent.mkdir(parents=True, exist_ok=True)
    append_private(path, f"{camera_id} {digest(token)}\n")
    return token


def revoke_camera(path: Path, camera_id: str) -> int:
    """Remove every token of `camera_id`; returns how many."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line.split()[:1] != [camera_id]]
    write_private(path, "".join(f"{line}\n" for line in kept))
    return len(lines) - len(kept)


def parse_tokens(path: Path) -> dict[str, set[str]]:
    digests: dict[str, set[str]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 2 or not CAMERA_ID.match(parts[0]) or not DIGEST.match(parts[1]):
            raise CameraTokenError(f"{path}:{n}: expected `camera_id sha256hex`")
        digests.setdefault(parts[0], set()).add(parts[1])
    return digests


class CameraTokens:
    """Checks a camera's token against the file, re-reading it when its modification time changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._digests: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def _load(self) -> dict[str, set[str]]:
        if self.path is None:
            return {}
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._digests = parse_tokens(self.path)
                except CameraTokenError as exc:  # fail closed: a damaged file admits nobody, loudly
                    log.error("%s; every camera is refused until it is fixed", exc)
                    self._digests = {}
                self._stamp = stamp
            return self._digests

    def cameras(self, token: str | None) -> set[str]:
        """The camera ids (`*`: any) this token is valid for; empty for a missing or unknown token."""
        if not token:
            return set()
        presented = digest(token)
        return {camera for camera, digests in self._load().items()
                if any([hmac.compare_digest(presented, d) for d in digests])}

    def allows(self, camera_id: str, token: str | None) -> bool:
        if not token:
            return False
        presented = digest(token)
        known = self._load()
        candidates = known.get(camera_id, set()) | known.get("*", set())
        # Compare against every candidate: the time taken does not say which one matched.
        return any([hmac.compare_digest(presented, d) for d in candidates])
