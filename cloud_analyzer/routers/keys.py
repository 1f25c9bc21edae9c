"""API keys and the audit trail, for admins: create (the token is shown once), list, revoke, query."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from cloud_analyzer.deps import AnalyzerDep, filters, to_ms
from service_common.access import SCOPES, ApiKey, AuditEntry
from service_common.access.keys import KeyError_
from service_common.guard import ANY_KEY, Caller, require
from service_common.ids import HEX32_PATTERN, ID_PATTERN, KEY_ID_PATTERN

router = APIRouter(tags=["admin"])


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@ -]+$")
    scopes: list[str] = Field(min_length=1, description=f"subset of {list(SCOPES)}")
    expires_in_days: float | None = Field(None, gt=0, le=3650)
    rate_per_s: int | None = Field(None, ge=1, le=100_000, description="requests per second; default the service's")


class KeyOut(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    created_at_ms: int
    expires_at_ms: int | None
    revoked_at_ms: int | None
    rate_per_s: int | None


class NewKey(KeyOut):
    token: str = Field(description="the key itself: shown this once, stored only as a hash")


def key_out(key: ApiKey) -> KeyOut:
    return KeyOut(key_id=key.key_id, name=key.name, scopes=list(key.scopes), created_at_ms=key.created_at_ms,
                  expires_at_ms=key.expires_at_ms, revoked_at_ms=key.revoked_at_ms, rate_per_s=key.rate_per_s)


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


@router.get("/v1/keys", response_model=list[KeyOut], dependencies=[require("admin")])
def list_keys(analyzer: AnalyzerDep) -> list[KeyOut]:
    return [key_out(k) for k in analyzer.access.keys.list()]


class MyKey(KeyOut):
    holds: list[str] = Field(description="every scope this key holds, those its scopes imply included "
                                         "(admin: all): what a client may offer its user")


@router.get("/v1/keys/me", response_model=MyKey)
def my_key(caller: Annotated[Caller, require(ANY_KEY)]) -> MyKey:
    """The calling key itself: its scopes, expiry and rate, never its token.

    Any valid key may ask, so a client such as the console can show only what the key may do."""
    return MyKey(**key_out(caller.key).model_dump(), holds=[s for s in SCOPES if caller.key.allows(s)])


@router.delete("/v1/keys/{key_id}", response_model=KeyOut)
def revoke_key(analyzer: AnalyzerDep, key_id: Annotated[str, Path(pattern=KEY_ID_PATTERN)],
               caller: Annotated[Caller, require("admin", "key.revoke")]) -> KeyOut:
    key = analyzer.access.keys.revoke(key_id)
    if key is None:
        raise HTTPException(404, f"key {key_id} not found")
    caller.audit["detail"] = f"revoked key {key_id} {key.name!r}"
    return key_out(key)


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_before: str | None = Field(description="pass as `before` for older entries; null when none are left")


@router.get("/v1/audit", response_model=AuditPage)
def query_audit(
    analyzer: AnalyzerDep,
    caller: Annotated[Caller, require("admin", "audit.query")],
    since: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    key_id: Annotated[str | None, Query(pattern=KEY_ID_PATTERN)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    face_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    identity_id: Annotated[str | None, Query(pattern=HEX32_PATTERN)] = None,
    before: Annotated[str | None, Query(pattern=r"^\d{1,15}-\d{1,10}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    lo, hi = to_ms(since), to_ms(until)
    if (lo is not None and lo < 0) or (hi is not None and hi < 0):
        raise HTTPException(422, "times before 1970 hold no audit entries")
    items, more = analyzer.access.audit.query(lo, hi, key_id, action, face_id, identity_id, before, limit)
    caller.audit.update({k: v for k, v in (("face_id", face_id), ("identity_id", identity_id)) if v})
    caller.audit["detail"] = filters(since=since, until=until, key_id=key_id, action=action) + f"; {len(items)} entries"
    return AuditPage(items=items, next_before=more)
