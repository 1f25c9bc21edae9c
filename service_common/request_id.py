"""One request id per request, followed across the three services: taken from an incoming `X-Request-ID`
header when it is a sane token (else a new one is made), kept in a context variable for the request's
logs, returned in the response's `X-Request-ID`, written into the Redis stream entries the request makes
(`stream_fields()`), and sent on to the edges as gRPC metadata `x-request-id` (`grpc_metadata()`, read
back with `from_grpc()`). An id is only a correlation handle: never a secret, never trusted for access.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

# No web framework imported here: the access library (its audit entries carry the id) loads without one.
Scope = Message = dict[str, Any]

HEADER = "X-Request-ID"
GRPC_KEY = "x-request-id"  # gRPC metadata keys are lower case
# Letters, digits and - _ . : up to 64: a UUID, a ULID, a trace id or a load balancer's id all fit; nothing
# that could break a log line, a header or a Redis field.
VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


def valid(value: str | bytes | None) -> str | None:
    """The id if it is acceptable as given, else None (the caller then makes a new one)."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if value is not None and VALID.match(value) else None


def current() -> str | None:
    """The id of the request this code runs for; None outside a request (a worker, a background loop)."""
    return _current.get()


@contextmanager
def bound(request_id: str | None) -> Iterator[str | None]:
    """Run a block (a gRPC handler, a background job) under `request_id`."""
    token = _current.set(request_id)
    try:
        yield request_id
    finally:
        _current.reset(token)


def stream_fields() -> dict[str, str]:
    """`{"request_id": id}` for a Redis stream entry written while serving a request, else nothing."""
    rid = _current.get()
    return {"request_id": rid} if rid else {}


def grpc_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata for an outgoing gRPC call: the current id, if any."""
    rid = _current.get()
    return ((GRPC_KEY, rid),) if rid else ()


def from_grpc(context) -> str | None:  # type: ignore[no-untyped-def]
    """The valid `x-request-id` of an incoming gRPC call, if it has one."""
    for key, value in context.invocation_metadata() or ():
        if key == GRPC_KEY:
            return valid(value)
    return None


class RequestIdMiddleware:
    """Pure ASGI: binds the request's id for everything the request runs (handlers, the gate, thread-pool
    work inherits the context) and adds it to the response's headers."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = HEADER.lower().encode()
        rid = valid(next((v for k, v in scope.get("headers", []) if k == wanted), None)) or new_request_id()
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                   (HEADER.lower().encode(), rid.encode())]}
            await send(message)

        with bound(rid):
            await self.app(scope, receive, send_with_id)


def with_request_ids(app) -> None:  # type: ignore[no-untyped-def]
    """Add the middleware outermost (call it last, after `harden` and `protect`), so refusals by the body
    limit and the key gate carry the id too."""
    app.add_middleware(RequestIdMiddleware)
