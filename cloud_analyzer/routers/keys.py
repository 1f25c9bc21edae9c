"""API keys and the audit trail, for admins: create (the token is shown once), list, revoke, query."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from cloud_analyzer.deps import AnalyzerDep, filters, to_ms
from service_common.access import SCOPES, ApiKey
from service_common.access.keys import KeyError_
from service_common.guard import ANY_KEY, Caller, require
from service_common.ids import HEX32_PATTERN, ID_PATTERN, KEY_ID_PATTERN
from service_common.pagination import CursorQuery, Page, decode_cursor, encode_cursor, page_of
from service_common.times import Timestamp, rfc3339_ms

router = APIRouter(tags=["admin"])
Scope = Literal[SCOPES]  # type: ignore[valid-type]  # an enum in the OpenAPI: clients see the valid scopes


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@ -]+$")
    scopes: list[Scope] = Field(min_length=1, max_length=len(SCOPES), description="what the key may do "
                                                                                "(docs/security.md)")
    expires_in_days: float | None = Field(None, gt=0, le=3650)
    rate_per_s: int | None = Field(None, ge=1, le=100_000, description="requests per second; default the service's")


class KeyOut(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    created_at_ms: int
    expires_at_ms: int | None
    revoked_at_ms: int | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    rate_per_s: int | None


class NewKey(KeyOut):
    token: str = Field(description="the key itself: shown this once, stored only as a hash")


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(key_id=key.key_id, name=key.name, scopes=list(key.scopes), created_at_ms=key.created_at_ms,
                  expires_at_ms=key.expires_at_ms, revoked_at_ms=key.revoked_at_ms, rate_per_s=key.rate_per_s,
                  created_at=rfc3339_ms(key.created_at_ms), expires_at=rfc3339_ms(key.expires_at_ms),
                  revoked_at=rfc3339_ms(key.revoked_at_ms))


@router.post("/v1/keys", status_code=201, response_model=NewKey)
def create_key(analyzer: AnalyzerDep, body: KeyIn,
               caller: Annotated[Caller, require("admin", "key.create")]) -> NewKey:
    expires = int((time.time() + body.expires_in_days * 86400) * 1000) if body.expires_in_days else None
    try:
        key, token = analyzer.access.keys.create(body.name, body.scopes, expires, body.rate_per_s)
    except KeyError_ as exc:
        raise HTTPException(422, str(exc)) from exc
    caller.audit["detail"] = f"created key {key.key_id} {key.name!r} scopes {','.join(key.scopes)}"
    return NewKey(**key_out(key).model_dump(), token=token)


@router.get("/v1/keys", response_model=Page[KeyOut], dependencies=[require("admin")])
def list_keys(analyzer: AnalyzerDep, cursor: CursorQuery = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Page[KeyOut]:
    """Every key (revoked and expired ones too), oldest first."""
    rows = [key_out(k) for k in analyzer.access.keys.list()]
    return page_of(rows, cursor, limit, lambda k: [k.created_at_ms, k.key_id], (int, str))


class MyKey(KeyOut):
    holds: list[str] = Field(description="every scope this key holds, those its scopes imply included "
                                         "(admin: all): what a client may offer its user")


@router.get("/v1/keys/me", response_model=MyKey)
def my_key(caller: Annotated[Caller, require(ANY_KEY)]) -> MyKey:
    """The calling key itself: its scopes, expiry and rate, never its token.

    Any valid key may ask, so a client such as the console can show only what the key may do."""
    return MyKey(**key_out(caller.key).model_dump(), holds=[s for s in SCOPES if caller.key.allows(s)])


@router.delete("/v1/keys/{key_id}", status_code=204, response_class=Response)
def revoke_key(analyzer: AnalyzerDep, key_id: Annotated[str, Path(pattern=KEY_ID_PATTERN)],
               caller: Annotated[Caller, require("admin", "key.revoke")]) -> Response:
    """Revoked at once (the key stays listed, with `revoked_at`, for the audit trail)."""
    key = analyzer.access.keys.revoke(key_id)
    if key is None:
        raise HTTPException(404, f"key {key_id} not found")
    caller.audit["detail"] = f"revoked key {key_id} {key.name!r}"
    return Response(status_code=204)


class AuditEntryOut(BaseModel):
    id: str
    at_ms: int
    at: str = Field(description="at_ms as RFC 3339")
    key_id: str
    key_name: str
    action: str
    outcome: str = Field(description="ok | denied | failed")
    status: int
    client: str
    face_id: str
    identity_id: str
    layers: str
    detail: str
    request_id: str = Field("", description="the request's X-Request-ID: its log lines, and the edge's for a view "
                                            "or erasure (README, Operating it)")


MAX_STREAM_PART = 2**64 - 1  # each part of a Redis stream id


@router.get("/v1/audit", response_model=Page[AuditEntryOut])
def query_audit(
    analyzer: AnalyzerDep,
    caller: Annotated[Caller, require("admin", "audit.query")],
    since: Annotated[Timestamp | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[Timestamp | None, Query(description="ISO 8601, inclusive")] = None,
    key_id: Annotated[str | None, Query(pattern=KEY_ID_PATTERN)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    face_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    identity_id: Annotated[str | None, Query(pattern=HEX32_PATTERN)] = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[AuditEntryOut]:
    """Entries matching every filter given, newest first."""
    lo, hi = to_ms(since), to_ms(until)
    if (lo is not None and lo < 0) or (hi is not None and hi < 0):
        raise HTTPException(422, "times before 1970 hold no audit entries")
    before = None
    if cursor:
        ms, seq = decode_cursor(cursor, (int, int))
        if not (0 <= ms <= MAX_STREAM_PART and 0 <= seq <= MAX_STREAM_PART):
            raise HTTPException(422, "cursor: not a cursor this API gave out")
        before = f"{ms}-{seq}"
    items, more = analyzer.access.audit.query(lo, hi, key_id, action, face_id, identity_id, before, limit)
    caller.audit.update({k: v for k, v in (("face_id", face_id), ("identity_id", identity_id)) if v})
    caller.audit["detail"] = filters(since=since, until=until, key_id=key_id, action=action) + f"; {len(items)} entries"
    return Page[AuditEntryOut](items=[AuditEntryOut(**e.__dict__, at=rfc3339_ms(e.at_ms)) for e in items],
                               next_cursor=encode_cursor([int(p) for p in more.split("-")]) if more else None)
