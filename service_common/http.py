"""HTTP plumbing shared by the three services: a streaming request-size limit, and errors as problem
details that say what went wrong without naming internals (service_common/problems.py).

Pure ASGI (no Starlette base classes) so the limit applies while the body streams in: a 500 MB chunked
upload is refused once `limit` bytes have arrived, not after the framework has buffered all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from service_common import problems

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)
INTERNAL_ERROR = problems.INTERNAL_ERROR


class BodyTooLarge(Exception):
    """Raised from `receive` once a request body passes the limit; the middleware answers 413."""


class BodyLimit:
    """Answer 413 as soon as a request declares (Content-Length) or sends more than `limit` body bytes.

    Whatever the app does once the limit trips (a form parser turning the error into a 400, a handler
    raising), the client gets the 413: the app's own response is discarded."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = content_length(scope)
        if declared is not None and declared > self.limit:
            await self._too_large(send)
            return
        has_body = bool(declared) or header(scope, b"transfer-encoding") is not None
        received = 0
        tripped = body_done = started = False

        async def limited_receive() -> Message:
            nonlocal received, tripped, body_done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.limit:
                    tripped = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if tripped:  # the app answered after the limit tripped: ours goes out instead
                return
            if message["type"] == "http.response.start":
                started = True
                if has_body and not body_done:
                    # Answered before the body was read (404, 405, 401...): end the connection after
                    # this response, or the server would go on receiving (and discarding) all of it.
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not tripped:
                raise
        if tripped and not started:
            await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        await problems.send_problem(send, 413, f"request body larger than {self.limit} bytes", close=True)


def header(scope: Scope, wanted: bytes) -> bytes | None:
    return next((value for name, value in scope.get("headers", []) if name == wanted), None)


def content_length(scope: Scope) -> int | None:
    value = header(scope, b"content-length")
    try:
        return None if value is None else int(value)
    except ValueError:
        return None  # the server refuses a malformed length itself


def harden(app: FastAPI, max_body_bytes: int, logger: logging.Logger) -> None:
    """The streaming body limit, and every error as a problem (service_common/problems.py): an unexpected
    exception is logged with its traceback and the client is told only that it was internal."""
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    problems.install(app, logger)
