"""`Idempotency-Key` on creating POSTs (draft-ietf-httpapi-idempotency-key-header): a client that did not
hear the answer sends the same request again with the same key and gets the first answer, not a second
identity.

The first request with a key reserves it in Redis (SET NX, `idempotency_key`, per API key and action), runs,
and stores its status and JSON body there for IDEMPOTENCY_TTL_S. A retry with the same key by the same API
key then gets that answer again (header `Idempotent-Replayed: true`); with a different request (another
fingerprint: the parsed fields and the SHA-256 of each file, not the raw bytes, since a multipart boundary
changes between retries) it gets 422; while the first is still running, 409. A request that fails (any
4xx/5xx) frees its key, so it can be retried with the same key once fixed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import redis
from fastapi import Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from service_common.redis_keys import IDEMPOTENCY_TTL_S, idempotency_key

IdempotencyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
    description="any client-chosen string (a UUID): a retry with the same key gets the first answer")]
PENDING_TTL_S = 300  # a reservation whose request died without an answer frees itself after this


def fingerprint(*parts: Any) -> str:
    """The request as the route parsed it: JSON-able values, with bytes (files) as their SHA-256."""
    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return hashlib.sha256(value).hexdigest()
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in sorted(value.items())}
        return value

    return hashlib.sha256(json.dumps(plain(list(parts)), sort_keys=True).encode()).hexdigest()


class Idempotency:
    """One creating request's claim on its key. `replay` is the first answer when there was one."""

    def __init__(self, client: redis.Redis, key_id: str, action: str, key: str | None, print_: str) -> None:
        self.r, self.print = client, print_
        self.key = idempotency_key(key_id, action, key) if key else None
        self.replay: JSONResponse | None = None
        if self.key is None:
            return
        mine = json.dumps({"fingerprint": print_, "state": "pending"})
        if self.r.set(self.key, mine, nx=True, ex=PENDING_TTL_S):
            return
        raw = self.r.get(self.key)
        if raw is None:  # expired between the two calls: ours now
            self.r.set(self.key, mine, ex=PENDING_TTL_S)
            return
        stored = json.loads(raw)
        if stored["fingerprint"] != print_:
            self.key = None  # not ours to free
            raise HTTPException(422, "Idempotency-Key was already used with a different request; use a new key")
        if stored["state"] == "pending":
            self.key = None
            raise HTTPException(409, "a request with this Idempotency-Key is still being processed; retry later")
        self.replay = JSONResponse(stored["body"], status_code=stored["status"],
                                   headers={"Idempotent-Replayed": "true"})

    def done(self, status: int, body: Any) -> None:
        """Keep the answer for retries."""
        if self.key is not None and self.replay is None:
            self.r.set(self.key, json.dumps({"fingerprint": self.print, "state": "done", "status": status,
                                             "body": body}), ex=IDEMPOTENCY_TTL_S)

    def failed(self) -> None:
        """The request ended in an error: free the key for a corrected retry."""
        if self.key is not None and self.replay is None:
            self.r.delete(self.key)

    async def answer(self, audit: dict[str, str], status: int, work: Callable[[], Awaitable[BaseModel]]
                     ) -> BaseModel | JSONResponse:
        """The first answer again (noted in the request's audit entry), or `work`'s, kept for retries."""
        if self.replay is not None:
            audit["detail"] = "replayed (Idempotency-Key)"
            return self.replay
        try:
            out = await work()
        except BaseException:
            self.failed()
            raise
        self.done(status, out.model_dump(mode="json"))
        return out
