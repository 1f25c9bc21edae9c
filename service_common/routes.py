"""What each route of a FastAPI app demands, read from the app itself: the `Require` among its
dependencies (scope, audited action, stronger scopes for some query values) and what kind of body it
takes. The gate enforces this before the body is read; tests compare it with docs/security.md."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import FastAPI, params, routing
from fastapi.dependencies.models import Dependant
from starlette.routing import BaseRoute

from service_common.guard import Require

BodyKind = Literal["none", "json", "form"]


@dataclass(frozen=True)
class RoutePolicy:
    require: Require | None  # None: open (health, docs)
    body: BodyKind


def _requires(dependant: Dependant) -> list[Require]:
    found = [dependant.call] if isinstance(dependant.call, Require) else []
    return found + [r for sub in dependant.dependencies for r in _requires(sub)]


def _body(dependant: Dependant) -> BodyKind:
    if not dependant.body_params:
        return "none"
    forms = any(isinstance(p.field_info, (params.Form, params.File)) for p in dependant.body_params)
    return "form" if forms else "json"


def flat_routes(app: FastAPI) -> list[BaseRoute]:
    """Every route as the router matches it: included routers flattened, with their prefixes and
    router-level dependencies applied (FastAPI keeps included routers nested since 0.16x)."""
    contexts = getattr(routing, "iter_route_contexts", None)
    return list(contexts(app.router.routes)) if contexts else list(app.router.routes)


def policy(route: BaseRoute) -> RoutePolicy:
    dependant: Dependant | None = getattr(route, "dependant", None)
    if dependant is None:  # the docs' own routes
        return RoutePolicy(None, "none")
    found = _requires(dependant)
    if len(found) > 1:
        raise ValueError(f"{getattr(route, 'path', route)}: more than one require(...)")
    return RoutePolicy(found[0] if found else None, _body(dependant))


def scope_table(app: FastAPI) -> set[tuple[str, str, str]]:
    """(scope, "METHOD /path[?name=value]", audited action or "") for every protected endpoint; open
    endpoints as ("open", "METHOD /path", "")."""
    rows: set[tuple[str, str, str]] = set()
    for route in flat_routes(app):
        methods = sorted(getattr(route, "methods", None) or ["GET"])
        rule = policy(route).require
        for method in methods:
            if method == "HEAD":
                continue
            endpoint = f"{method} {route.path}"  # type: ignore[attr-defined]
            if rule is None:
                rows.add(("open", endpoint, ""))
                continue
            rows.add((rule.scope, endpoint, rule.action or ""))
            for (name, value), scope in rule.stronger.items():
                rows.add((scope, f"{endpoint}?{name}={value}", rule.action or ""))
    return rows
