"""API keys: random, shown once, stored only as a hash, each with a name, scopes and an optional expiry.

A key reads `fck_<key_id>_<secret>`: the id finds the record, the secret proves possession. Only
SHA-256(secret) is stored; the secret is 256 random bits, so a slow password hash would add nothing.
Every request looks its key up in Redis (no cache), so a revocation holds on every replica at once.

Keys: `api_key_key(key_id)` (hash: name, scopes, sha256, created_at_ms, expires_at_ms, revoked_at_ms,
rate_per_s) and `API_KEYS` (zset, key_id by creation time) in service_common/redis_keys.py.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis

from service_common.redis_keys import API_KEYS, api_key_key
from service_common.secret_files import create_private

SCOPES = ("identities:read", "identities:write", "sightings:read", "faces:search", "faces:verify", "faces:detect",
          "faces:view_base", "faces:view", "events:read",
          "webhooks:admin", "metrics:read", "admin")
# A scope that holds another: full pixels include the base-only preview; searching the gallery includes
# comparing two given faces (1:1) and finding faces. admin holds every scope.
IMPLIES = {"faces:view": ("faces:view_base",), "faces:search": ("faces:verify", "faces:detect"),
           "faces:verify": ("faces:detect",)}
TOKEN = re.compile(r"^fck_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
NAME = re.compile(r"^[A-Za-z0-9_.@ -]{1,64}$")


class KeyError_(ValueError):  # noqa: N801 - not the builtin KeyError; a bad key request
    pass


def new_token() -> str:
    """A fresh key token; nothing is stored (see KeyStore.register)."""
    return f"fck_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    scopes: tuple[str, ...]
    created_at_ms: int
    expires_at_ms: int | None
    revoked_at_ms: int | None
    rate_per_s: int | None  # None: the service's default

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes or any(scope in IMPLIES.get(s, ()) for s in self.scopes)

    def active(self, now_ms: int) -> bool:
        return self.revoked_at_ms is None and (self.expires_at_ms is None or now_ms < self.expires_at_ms)


def _parse(key_id: str, raw: dict[bytes, bytes]) -> ApiKey:
    f = {k.decode(): v.decode() for k, v in raw.items()}
    return ApiKey(key_id=key_id, name=f["name"], scopes=tuple(s for s in f["scopes"].split(",") if s),
                  created_at_ms=int(f["created_at_ms"]), expires_at_ms=int(f["expires_at_ms"] or 0) or None,
                  revoked_at_ms=int(f.get("revoked_at_ms") or 0) or None,
                  rate_per_s=int(f.get("rate_per_s") or 0) or None)


class KeyStore:
    def __init__(self, client: redis.Redis, clock: Callable[[], float] = time.time) -> None:
        self.r, self.clock = client, clock  # clock: seconds since the epoch (tests pass their own)

    def register(self, token: str, name: str, scopes: list[str] | tuple[str, ...],
                 expires_at_ms: int | None = None, rate_per_s: int | None = None) -> ApiKey:
        """Store a key for `token` (from new_token); KeyError_ if the request is invalid or the id is taken."""
        match = TOKEN.match(token)
        if not match:
            raise KeyError_("not a key token: expected fck_<16 hex>_<43 url-safe characters> (see new_token)")
        if not NAME.match(name):
            raise KeyError_("key name must be 1-64 characters of letters, digits, space and _.@-")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise KeyError_(f"scopes must be a non-empty subset of {list(SCOPES)}; unknown: {unknown}")
        now = int(self.clock() * 1000)
        if expires_at_ms is not None and expires_at_ms <= now:
            raise KeyError_("expiry is in the past")
        if rate_per_s is not None and not 1 <= rate_per_s <= 100_000:
            raise KeyError_("rate_per_s must be 1..100000")
        key_id, secret = match.groups()
        existing = self.r.hget(api_key_key(key_id), "sha256")
        if existing is not None:  # registering the same token again (every start from a secret file) is a no-op
            if not hmac.compare_digest(existing.decode(), _digest(secret)):
                raise KeyError_("key id already taken")
            return _parse(key_id, self.r.hgetall(api_key_key(key_id)))
        fields = {"name": name, "scopes": ",".join(dict.fromkeys(scopes)), "sha256": _digest(secret),
                  "created_at_ms": now, "expires_at_ms": expires_at_ms or "", "rate_per_s": rate_per_s or ""}
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(api_key_key(key_id), mapping=fields)
        pipe.zadd(API_KEYS, {key_id: now})
        pipe.execute()
        return _parse(key_id, self.r.hgetall(api_key_key(key_id)))

    def create(self, name: str, scopes: list[str] | tuple[str, ...], expires_at_ms: int | None = None,
               rate_per_s: int | None = None) -> tuple[ApiKey, str]:
        """A new key and its token; the token is not kept anywhere, show it to its owner once."""
        token = new_token()
        return self.register(token, name, scopes, expires_at_ms, rate_per_s), token

    def verify(self, token: str) -> ApiKey | None:
        """The active key this token proves, else None (unknown, wrong secret, revoked or expired)."""
        match = TOKEN.match(token)
        if not match:
            return None
        key_id, secret = match.groups()
        raw = self.r.hgetall(api_key_key(key_id))
        if not raw or b"name" not in raw:
            return None
        if not hmac.compare_digest(raw[b"sha256"].decode(), _digest(secret)):
            return None
        key = _parse(key_id, raw)
        return key if key.active(int(self.clock() * 1000)) else None

    def get(self, key_id: str) -> ApiKey | None:
        raw = self.r.hgetall(api_key_key(key_id))
        return _parse(key_id, raw) if raw and b"name" in raw else None

    def list(self) -> list[ApiKey]:
        ids = [i.decode() for i in self.r.zrange(API_KEYS, 0, -1)]
        pipe = self.r.pipeline(transaction=False)
        for key_id in ids:
            pipe.hgetall(api_key_key(key_id))
        return [_parse(key_id, raw) for key_id, raw in zip(ids, pipe.execute()) if raw and b"name" in raw]

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key (kept, marked, for the audit trail); None if there is no such key."""
        if self.get(key_id) is None:
            return None
        self.r.hsetnx(api_key_key(key_id), "revoked_at_ms", int(self.clock() * 1000))
        return self.get(key_id)

    def any(self) -> bool:
        return bool(self.r.zcard(API_KEYS))


class AdminKeyError(RuntimeError):
    """No admin key can exist: none in Redis and no key file to make one in."""


def bootstrap_admin(keys: KeyStore, key_file: Path | None) -> bool:
    """The first admin key, never printed nor logged. With `key_file` (a compose secret, the launcher's
    file): register the token it holds, or first write a new one there (created 0600); True when it wrote
    the file. Without: nothing to do when a key exists already; AdminKeyError when none does (an admin
    key nobody can read would lock everyone out, one in the log would hand it to whoever reads logs)."""
    if key_file is not None:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        written = create_private(key_file, new_token() + "\n")
        keys.register(key_file.read_text().strip(), "admin", ["admin"])
        return written
    if not keys.any():
        raise AdminKeyError("no API key exists yet: set ANALYZER_ADMIN_KEY_FILE to a file path; the analyzer "
                            "writes a new admin key there (mode 0600) and registers it")
    return False
