"""FastAPI side of access control: `require(scope, action)` on every protected endpoint.

The key itself is checked earlier, by `service_common.gate.ApiKeyGate`, before any body is read: a
request without a valid key gets 401, with a key lacking the scope 403, over its key's rate 429 with
Retry-After, and those denials are summarised per client (service_common/access/denials.py). Here the
dependency hands the verified key to the endpoint and, for audited actions (`action` set), leaves one
audit entry per request: who, what, on which face or identity, from where, and how it ended.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import redis
from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service_common.access.audit import AuditLog
from service_common.access.denials import Denials
from service_common.access.keys import ApiKey, KeyStore
from service_common.access.ratelimit import RateLimiter
from service_common.ids import audit_safe
from service_common.settings import AccessSettings

bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                    description="an API key: `Authorization: Bearer fck_...` (see docs/security.md)")
SUBJECT = ("face_id", "identity_id", "camera_id")
STATE_KEY = "api_key"  # where the gate leaves the verified key in the request's state
ANY_KEY = "any_key"  # not a scope: `require(ANY_KEY)` admits every valid key (e.g. a key asking about itself)


def key_allows(key: ApiKey, scope: str) -> bool:
    return scope == ANY_KEY or key.allows(scope)


# Where a route class that turns an error into its own answer (cloud_analyzer/routers/compreface) leaves
# (status, message) in the request's state, so the audit entry says the request failed.
ANSWERED_ERROR = "answered_error"


@dataclass
class Access:
    """One per app (app.state.access): the clients access control needs."""

    keys: KeyStore
    audit: AuditLog
    limiter: RateLimiter
    default_rate_per_s: int
    denials: Denials


@dataclass
class Caller:
    """The authenticated key behind a request, and what its audit entry will say it touched."""

    key: ApiKey
    client: str
    audit: dict[str, str] = field(default_factory=dict)  # face_id, identity_id, layers, detail


class Require:
    """Dependency: the caller's key must hold `scope` (admin holds every scope). `stronger` names query
    values that need more: {("layers", "full"): "faces:view"} makes `?layers=full` need faces:view."""

    def __init__(self, scope: str, action: str | None = None,
                 stronger: dict[tuple[str, str], str] | None = None) -> None:
        self.scope, self.action, self.stronger = scope, action, stronger or {}

    def scope_for(self, query: dict[str, str]) -> str:
        """The scope a request with these query parameters needs."""
        return next((s for (name, value), s in self.stronger.items() if query.get(name) == value), self.scope)

    def __call__(self, request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Iterator[Caller]:
        access: Access = request.app.state.access
        key: ApiKey | None = getattr(request.state, STATE_KEY, None)
        # The gate has checked key, scope and rate already; checked again here so that an app built
        # without the gate fails closed rather than open.
        if key is None or not key_allows(key, self.scope_for(dict(request.query_params))):
            raise HTTPException(403, "this request was not authorised")
        client = request.client.host if request.client else ""
        caller = Caller(key, client, {k: str(v) for k, v in request.path_params.items() if k in SUBJECT})
        if self.action is None:
            yield caller
            return
        try:
            yield caller
        except HTTPException as exc:
            self._record(access, caller, "failed", exc.status_code, str(exc.detail))
            raise
        except RequestValidationError:  # a path or form value broke its rule (it is recorded sanitised)
            self._record(access, caller, "failed", 422, "invalid request")
            raise
        except Exception:
            self._record(access, caller, "failed", 500, "internal error")
            raise
        answered = request.scope.get("state", {}).get(ANSWERED_ERROR)
        if answered is not None:
            self._record(access, caller, "failed", *answered)
            return
        route = request.scope.get("route")
        self._record(access, caller, "ok", getattr(route, "status_code", None) or 200, caller.audit.pop("detail", ""))

    def _record(self, access: Access, caller: Caller, outcome: str, status: int, detail: str) -> None:
        access.audit.record(self.action or "", outcome, status, key_id=caller.key.key_id, key_name=caller.key.name,
                            client=caller.client, detail=_with_camera(caller.audit, detail),
                            layers=caller.audit.get("layers", ""), **_ids(caller.audit))


def _ids(subject: dict[str, str]) -> dict[str, str]:
    return {k: subject[k] for k in ("face_id", "identity_id") if k in subject}


def _with_camera(subject: dict[str, str], detail: str) -> str:
    if "camera_id" not in subject:
        return detail
    return f"camera {audit_safe(subject['camera_id'])}; {detail}".rstrip("; ")


def require(scope: str, action: str | None = None, stronger: dict[tuple[str, str], str] | None = None) -> Any:
    """`Depends` for an endpoint needing `scope`. Function scope: the audit entry is written before the
    response leaves, so a crash right after a view cannot lose its entry."""
    return Depends(Require(scope, action, stronger), scope="function")


def build_access(client: redis.Redis, settings: AccessSettings) -> Access:
    """Keys, audit, rate limits and denial accounting over one Redis client."""
    audit = AuditLog(client, settings.audit_max_entries, settings.audit_retention_days)
    limiter = RateLimiter(client)
    return Access(KeyStore(client), audit, limiter, settings.rate_limit_per_s,
                  Denials(client, limiter, audit, settings.denial_budget_per_min, settings.denial_window_s))
