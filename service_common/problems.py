"""One error shape for every service: RFC 9457 problem details (`application/problem+json`).

    {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "face 3f... not found"}

Validation errors add `errors`, one {loc, msg, type} per broken rule (the input itself is not echoed).
A 503 always carries Retry-After. Routers keep raising `HTTPException(status, "clear message")`; the
handlers here turn that into a problem, and the pure ASGI parts (the key gate, the body limit) answer
with `send_problem`.

`install(app, logger)` sets the handlers and makes the app's OpenAPI document, for every operation, the
error statuses it can return with this schema. It reads the routes when the schema is first built, so
routes added by any router, before or after `install`, are covered without a list to keep.
"""

from __future__ import annotations

import ast
import inspect
import json
import logging
import textwrap
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from service_common.routes import flat_routes, policy

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 5  # what a 503 tells a client to wait when nothing better is known
INTERNAL_ERROR = "internal error"
STORAGE_UNAVAILABLE = "storage unavailable; retry later"
MAX_ERRORS = 20  # validation errors listed in one answer: enough to fix a request, bounded in size


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: body/query/path/header, then the field's path")
    msg: str
    type: str = Field(description="the rule broken, e.g. missing, string_pattern_mismatch")


class Problem(BaseModel):
    """An error (RFC 9457)."""

    type: str = Field("about:blank", description="about:blank: the status says what kind of error this is")
    title: str = Field(description="the status's name")
    status: int
    detail: str = Field(description="what went wrong with this request, and what to do")
    errors: list[FieldError] | None = Field(None, description="validation errors (422 only)")


def problem(status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "about:blank", "title": _title(status), "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return body


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _headers(status: int, headers: dict[str, str] | None) -> dict[str, str]:
    out = dict(headers or {})
    if status == 503 and not any(k.lower() == "retry-after" for k in out):
        out["Retry-After"] = str(RETRY_AFTER_S)
    return out


def problem_response(status: int, detail: str, headers: dict[str, str] | None = None,
                     errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse(problem(status, detail, errors), status_code=status, headers=_headers(status, headers),
                        media_type=PROBLEM_JSON)


async def send_problem(send: Callable[[dict[str, Any]], Any], status: int, detail: str,
                       headers: dict[str, str] | None = None, close: bool = False) -> None:
    """The problem as a raw ASGI response (for middleware that answers before the app runs)."""
    await send_json(send, status, problem(status, detail), PROBLEM_JSON, _headers(status, headers), close)


async def send_json(send: Callable[[dict[str, Any]], Any], status: int, content: Any, media_type: str,
                    headers: dict[str, str] | None = None, close: bool = False) -> None:
    """A JSON answer as a raw ASGI response; `close` ends the connection after it (an unread body)."""
    body = json.dumps(content).encode()
    raw = [(b"content-type", media_type.encode()), (b"content-length", str(len(body)).encode()),
           *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """{loc, msg, type} per broken rule: never the input (it may be large, binary or someone's secret)."""
    return [{"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in list(exc.errors())[:MAX_ERRORS]]


def _validation_detail(errors: list[dict[str, Any]]) -> str:
    said = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:3])
    return f"invalid request: {said}" if said else "invalid request"


def install(app: FastAPI, logger: logging.Logger) -> None:
    """Every error of `app` as a problem, and its OpenAPI saying so (call once, when the app is made)."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
        return problem_response(exc.status_code, detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc)
        return problem_response(422, _validation_detail(errors), errors=errors)

    @app.exception_handler(redis.RedisError)
    async def storage_down(request: Request, exc: redis.RedisError) -> JSONResponse:
        logger.error("%s %s: redis unavailable: %s", request.method, request.url.path, exc)
        return problem_response(503, STORAGE_UNAVAILABLE)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # Logged here with its traceback; the client is told only that it was internal (no class
        # names, reprs or addresses).
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem_response(500, INTERNAL_ERROR)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                                 summary=app.summary, description=app.description, routes=app.routes,
                                 tags=app.openapi_tags, servers=app.servers)
            document_errors(app, schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# --- OpenAPI ---------------------------------------------------------------------------------------
EXAMPLES = {
    400: "upload: empty file", 401: "a valid API key is required (Authorization: Bearer <key>)",
    403: "this key lacks the 'admin' scope", 404: "face 3f2a... not found", 409: "the request conflicts with "
    "the current state", 410: "this face's enhancement layers are no longer kept by its edge; ask for layers=base",
    413: "request body larger than 65536 bytes", 415: "unsupported content type 'text/plain'",
    422: "invalid request: query.limit: Input should be less than or equal to 500",
    429: "rate limit of this key exceeded; retry later", 502: "the edge returned an unusable enhancement container",
    503: STORAGE_UNAVAILABLE,
}
WHY = {
    400: "the request cannot be read", 401: "no valid credentials", 403: "the credentials lack the scope needed",
    404: "no such resource", 409: "conflicts with the current state", 410: "gone: no longer kept",
    413: "body too large", 415: "unsupported media type", 422: "invalid input (`errors` lists each rule broken)",
    429: "too many requests (see Retry-After)", 502: "an upstream service answered badly",
    503: "unavailable for now (see Retry-After)",
}
RETRY_AFTER = {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}


def document_errors(app: FastAPI, schema: dict[str, Any]) -> None:
    """Add the error statuses each operation can return, with the problem schema and an example."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = _problem_schema()
    schema["components"]["schemas"]["FieldError"] = FieldError.model_json_schema()
    for route in _api_routes(app):
        for method in getattr(route, "methods", None) or ():
            operation = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in sorted(error_statuses(route)):
                declared = responses.get(str(status), {})
                if status != 422 and declared.get("content"):  # the route answers this status with its own body
                    continue
                responses[str(status)] = _error_response(status, declared.get("description"))
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)


def _api_routes(app: FastAPI) -> list[Any]:
    return [r for r in flat_routes(app) if getattr(r, "include_in_schema", False) and hasattr(r, "dependant")]


def error_statuses(route: Any) -> set[int]:
    """What this route can answer besides success: the gate's denials where a key is needed, 404 where
    the path names something, 413/415 where a body is taken, 422 where there is input, 503 (storage
    away), what the route declares, and every `HTTPException(NNN` in the code it runs."""
    rule = policy(route)
    dependant = route.dependant
    statuses = {413, 503}  # any request may carry a body over the limit; storage may be away
    if rule.require is not None:
        statuses |= {401, 403, 429}
    if dependant.path_params:
        statuses.add(404)
    if rule.body != "none":  # a body that cannot be parsed (bytes that are not JSON/UTF-8, a broken form)
        statuses.add(400)
    if rule.body == "form":
        statuses.add(415)
    if dependant.path_params or dependant.query_params or dependant.body_params or dependant.header_params:
        statuses.add(422)
    statuses |= {int(s) for s in (route.responses or {}) if str(s).isdigit() and int(s) >= 400}
    statuses |= raised_statuses([route.endpoint, *_dependency_calls(dependant)])
    return {s for s in statuses if 400 <= s < 600 and s != 500}


def _dependency_calls(dependant: Any) -> Iterable[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _dependency_calls(sub)


def raised_statuses(functions: Iterable[Callable[..., Any]], depth: int = 2) -> set[int]:
    """Statuses of `HTTPException(NNN, ...)` raised in these functions and in the module-level functions
    they name (to `depth`), read from their source. Methods of objects are not followed: a route whose
    helpers raise elsewhere declares those statuses in its `responses`."""
    found: set[int] = set()
    seen: set[int] = set()
    todo = [(f, 0) for f in functions]
    while todo:
        fn, level = todo.pop()
        if not inspect.isfunction(fn) and not inspect.ismethod(fn):
            fn = type(fn).__call__ if not isinstance(fn, type) else fn  # a dependency object: its __call__
        fn = inspect.unwrap(fn)
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        except (OSError, TypeError, SyntaxError):
            continue
        names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):  # called here or handed on (run_in_threadpool(helper, ...))
                names.add(node.id)
            if isinstance(node, ast.Call):
                callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if callee == "HTTPException" and node.args and isinstance(node.args[0], ast.Constant) \
                        and isinstance(node.args[0].value, int):
                    found.add(node.args[0].value)

        if level < depth:
            scope = getattr(fn, "__globals__", {})
            todo += [(scope[n], level + 1) for n in names if inspect.isfunction(scope.get(n))]
    return found


def _problem_schema() -> dict[str, Any]:
    schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schema.pop("$defs", None)
    return schema


def _example(status: int) -> dict[str, Any]:
    if status == 422:
        return problem(422, EXAMPLES[422], [{"loc": ["query", "limit"], "msg": "Input should be less than or equal "
                                             "to 500", "type": "less_than_equal"}])
    return problem(status, EXAMPLES.get(status, _title(status).lower()))


def _error_response(status: int, description: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description or WHY.get(status, _title(status)),
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"},
                                   "example": _example(status)}},
    }
    if status in (429, 503):
        out["headers"] = {"Retry-After": RETRY_AFTER}
    return out
