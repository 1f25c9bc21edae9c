"""CompreFace's error body, `{"message", "code"}` (its CommonExceptionCode), on every /api/v1 route.

The routes raise HTTPException as every other route does (the shared face functions too); `CompreFaceRoute`
turns what reaches it into CompreFace's body before any app-wide handler sees it, so these paths keep
CompreFace's shape whatever the rest of the API answers. Denials of the key gate (before any route) get
the same body through `denial_body` (app.state.denial_bodies, service_common/gate.py).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from service_common.guard import ANSWERED_ERROR

UNDEFINED, MISSING_HEADER, UNAVAILABLE_FILE_EXTENSION, VALIDATION = 0, 20, 21, 26
IMAGE_NOT_FOUND, NO_FACES_FOUND, FACES_SERVICE_EXCEPTION = 11, 28, 41
SUBJECT_NOT_FOUND, SUBJECT_ALREADY_EXISTS = 42, 43
NO_FACE_MESSAGE = "No face is found in the given image"


class CompreFaceError(HTTPException):
    """An error with CompreFace's own code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(status, message)
        self.code = code


def no_face() -> CompreFaceError:
    return CompreFaceError(400, NO_FACES_FOUND, NO_FACE_MESSAGE)


def body(status: int, message: str, code: int | None = None) -> tuple[int, dict]:
    """(HTTP status, body) for an error of ours: CompreFace answers bad input with 400, not 422/415."""
    if code is None:
        code = {401: MISSING_HEADER, 404: IMAGE_NOT_FOUND, 415: UNAVAILABLE_FILE_EXTENSION,
                422: VALIDATION, 400: VALIDATION}.get(status, FACES_SERVICE_EXCEPTION if status >= 500 else UNDEFINED)
    if "no face found" in message:  # the shared functions' words for CompreFace's code 28
        return 400, {"message": NO_FACE_MESSAGE, "code": NO_FACES_FOUND}
    return (400 if status in (415, 422) else status), {"message": message, "code": code}


def denial_body(status: int, detail: str) -> dict:
    """The key gate's denial (401, 403, 429) in CompreFace's shape; the status stays the gate's."""
    if status == 401:
        detail = "Missing header: x-api-key (or it is not a valid API key)"
    return body(status, detail)[1]


class CompreFaceRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except StarletteHTTPException as exc:  # FastAPI's own (a body it cannot parse) are Starlette's
                status, content = body(exc.status_code, str(exc.detail), getattr(exc, "code", None))
                headers = getattr(exc, "headers", None)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
                status, headers = 400, None
                content = {"message": f"{where}: {first.get('msg')}".lstrip(": "), "code": VALIDATION}
            # The audit dependency is still open around this handler: tell it the request failed.
            request.scope.setdefault("state", {})[ANSWERED_ERROR] = (status, content["message"])
            return JSONResponse(content, status_code=status, headers=headers)

        return handle
