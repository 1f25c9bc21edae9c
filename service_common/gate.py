"""The API key gate: pure ASGI, in front of FastAPI, so a request is authenticated before a byte of its
body is read or parsed.

For each request it finds the route (as the router will), then, unless the route is open (health, docs):
a client address over its denial budget gets 429 before any key lookup; no valid key, 401; a key
without the route's scope, 403; over the key's rate, 429. Each denial is counted per client
(service_common/access/denials.py), not written one by one. An admitted request gets the body limit
that fits its route (none, JSON, form with files) and its verified key in the request's state, where
`require(...)` picks it up. A path no route serves still needs a valid key: unknown paths are not a way
around the gate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.routing import BaseRoute, Match

from service_common.access.denials import client_bucket
from service_common.access.keys import ApiKey
from service_common.guard import STATE_KEY, Access, key_allows
from service_common.http import ASGIApp, BodyLimit, Receive, Scope, Send, content_length, header
from service_common.problems import send_json, send_problem
from service_common.routes import BodyKind, RoutePolicy, flat_routes, policy

log = logging.getLogger(__name__)

# Paths whose clients send their key as `x-api-key` (CompreFace's header; the value is one of our API keys):
# accepted there besides `Authorization: Bearer`. An app may shape the denial bodies of such a prefix
# (`app.state.denial_bodies`: prefix -> (status, detail) -> JSON object), as its clients expect them.
X_API_KEY_PREFIXES = ("/api/v1/",)


@dataclass(frozen=True)
class BodyLimits:
    """Largest body per kind of route: a route that takes none gets a token allowance, JSON routes
    kilobytes, form routes (image uploads) megabytes."""

    none: int = 1024
    json: int = 64 * 1024
    form: int = 16 * 1024 * 1024

    def of(self, kind: BodyKind) -> int:
        return getattr(self, kind)


@dataclass
class Denial:
    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


class ApiKeyGate:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app, self.limits = app, limits
        self._table: list[tuple[BaseRoute, RoutePolicy]] = []
        self._version = -1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fastapi_app: FastAPI = scope["app"]
        route, rule = self._route(fastapi_app, scope)
        limit = self.limits.of(rule.body)
        if route is None or rule.require is not None:
            access: Access | None = getattr(fastapi_app.state, "access", None)
            try:
                verdict = (Denial(503, "starting; retry later") if access is None
                           else await run_in_threadpool(self._check, access, scope, route, rule))
            except redis.RedisError as exc:
                log.error("%s %s: redis unavailable: %s", scope["method"], scope["path"], exc)
                verdict = Denial(503, "storage unavailable; retry later")
            if isinstance(verdict, Denial):
                await _answer(scope, send, verdict, _denial_body(fastapi_app, scope["path"]))
                return
            scope.setdefault("state", {})[STATE_KEY] = verdict
        await BodyLimit(self.app, limit)(scope, receive, send)

    def _route(self, app: FastAPI, scope: Scope) -> tuple[BaseRoute | None, RoutePolicy]:
        """The route the router will pick (the first full match) and what it demands."""
        if self._version != len(app.router.routes):  # built on the first request, when every route is there
            self._table = [(route, policy(route)) for route in flat_routes(app)]
            self._version = len(app.router.routes)
        for route, rule in self._table:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return route, rule
        return None, RoutePolicy(None, "none")

    def _check(self, access: Access, scope: Scope, route: BaseRoute | None, rule: RoutePolicy) -> ApiKey | Denial:
        host = scope["client"][0] if scope.get("client") else ""
        client = client_bucket(host)
        action = f"{scope['method']} {getattr(route, 'path', '(no such endpoint)')}"
        if (wait := access.denials.over_budget(client)) is not None:
            access.denials.deny(client, 429, action)
            return Denial(429, "too many denied requests from this address; retry later",
                          {"Retry-After": str(max(1, round(wait)))})
        key = access.keys.verify(_bearer(scope))
        if key is None:
            access.denials.deny(client, 401, action)
            return Denial(401, "a valid API key is required (Authorization: Bearer <key>)",
                          {"WWW-Authenticate": "Bearer"})
        needed = rule.require.scope_for(dict(QueryParams(scope["query_string"]))) if rule.require else None
        if needed is not None and not key_allows(key, needed):
            access.denials.deny(client, 403, action, key.key_id)
            return Denial(403, f"this key lacks the {needed!r} scope")
        if (wait := access.limiter.hit(key.key_id, key.rate_per_s or access.default_rate_per_s)) is not None:
            access.denials.deny(client, 429, action, key.key_id)
            return Denial(429, "rate limit of this key exceeded; retry later",
                          {"Retry-After": str(max(1, round(wait)))})
        return key


def _bearer(scope: Scope) -> str:
    value = (header(scope, b"authorization") or b"").decode("latin-1")
    scheme, _, token = value.partition(" ")
    if scheme.lower() == "bearer":
        return token.strip()
    if scope["path"].startswith(X_API_KEY_PREFIXES):
        return (header(scope, b"x-api-key") or b"").decode("latin-1").strip()
    return ""


def _denial_body(app: FastAPI, path: str) -> Callable[[int, str], dict] | None:
    shapes: dict[str, Callable[[int, str], dict]] = getattr(app.state, "denial_bodies", None) or {}
    return next((shape for prefix, shape in shapes.items() if path.startswith(prefix)), None)


async def _answer(scope: Scope, send: Send, denial: Denial, shape: Callable[[int, str], dict] | None = None) -> None:
    """The denial as a problem (or in the shape the path's API answers errors in), without reading the
    body: if one was announced, the connection closes after it."""
    announced = bool(content_length(scope)) or header(scope, b"transfer-encoding") is not None
    if shape is None:
        await send_problem(send, denial.status, denial.detail, denial.headers, close=announced)
    else:
        await send_json(send, denial.status, shape(denial.status, denial.detail), "application/json",
                        denial.headers, close=announced)


def protect(app: FastAPI, limits: BodyLimits) -> None:
    """Put the gate in front of everything the app does (add it after `harden`)."""
    app.add_middleware(ApiKeyGate, limits=limits)
