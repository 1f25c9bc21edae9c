"""FastAPI side of access control: `require(scope, action)` on every protected endpoint.

A request without a valid key gets 401, with a key lacking the scope 403, over its key's rate 429 with
Retry-After. Audited actions (`action` set) leave one audit entry per request: who, what, on which
face or identity, from where, and how it ended; denied attempts leave one for every endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service_common.access.audit import AuditLog
from service_common.access.keys import ApiKey, KeyStore
from service_common.access.ratelimit import RateLimiter

bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey",
                    description="an API key: `Authorization: Bearer fck_...` (see docs/security.md)")
SUBJECT = ("face_id", "identity_id", "camera_id")


@dataclass
class Access:
    """One per app (app.state.access): the clients access control needs."""

    keys: KeyStore
    audit: AuditLog
    limiter: RateLimiter
    default_rate_per_s: int


@dataclass
class Caller:
    """The authenticated key behind a request, and what its audit entry will say it touched."""

    key: ApiKey
    client: str
    audit: dict[str, str] = field(default_factory=dict)  # face_id, identity_id, layers, detail


class Require:
    """Dependency: the caller's key must hold `scope` (admin holds every scope)."""

    def __init__(self, scope: str, action: str | None = None) -> None:
        self.scope, self.action = scope, action

    def __call__(self, request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Iterator[Caller]:
        access: Access = request.app.state.access
        client = request.client.host if request.client else ""
        subject = {k: str(v) for k, v in request.path_params.items() if k in SUBJECT}
        action = self.action or f"{request.method} {request.scope.get('route').path}"  # type: ignore[union-attr]
        key = access.keys.verify(credentials.credentials) if credentials else None

        def deny(status: int, detail: str, key_id: str = "", headers: dict | None = None) -> HTTPException:
            access.audit.record(action, "denied", status, key_id=key_id, key_name=key.name if key else "",
                                client=client, detail=_with_camera(subject, detail), **_ids(subject))
            return HTTPException(status, detail, headers=headers)

        if key is None:
            raise deny(401, "a valid API key is required (Authorization: Bearer <key>)",
                       headers={"WWW-Authenticate": "Bearer"})
        if not key.allows(self.scope):
            raise deny(403, f"this key lacks the {self.scope!r} scope", key.key_id)
        retry_after = access.limiter.hit(key.key_id, key.rate_per_s or access.default_rate_per_s)
        if retry_after is not None:
            raise deny(429, "rate limit of this key exceeded; retry later", key.key_id,
                       headers={"Retry-After": str(max(1, round(retry_after)))})
        caller = Caller(key, client, dict(subject))
        if self.action is None:
            yield caller
            return
        try:
            yield caller
        except HTTPException as exc:
            self._record(access, caller, "failed", exc.status_code, str(exc.detail))
            raise
        except Exception:
            self._record(access, caller, "failed", 500, "internal error")
            raise
        route = request.scope.get("route")
        self._record(access, caller, "ok", getattr(route, "status_code", None) or 200, caller.audit.pop("detail", ""))

    def _record(self, access: Access, caller: Caller, outcome: str, status: int, detail: str) -> None:
        access.audit.record(self.action or "", outcome, status, key_id=caller.key.key_id, key_name=caller.key.name,
                            client=caller.client, detail=_with_camera(caller.audit, detail),
                            layers=caller.audit.get("layers", ""), **_ids(caller.audit))


def _ids(subject: dict[str, str]) -> dict[str, str]:
    return {k: subject[k] for k in ("face_id", "identity_id") if k in subject}


def _with_camera(subject: dict[str, str], detail: str) -> str:
    return f"camera {subject['camera_id']}; {detail}".rstrip("; ") if "camera_id" in subject else detail


def require(scope: str, action: str | None = None) -> Any:
    """`Depends` for an endpoint needing `scope`. Function scope: the audit entry is written before the
    response leaves, so a crash right after a view cannot lose its entry."""
    return Depends(Require(scope, action), scope="function")
