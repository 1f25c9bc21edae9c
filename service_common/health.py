"""`/readyz` for the cloud services: ready to serve (every check passes: Redis reachable, models loaded,
the gRPC server up, the workers running), or 503 with Retry-After and which check failed. Open and
minimal: check names and true/false, no addresses or errors. `/healthz` stays liveness (the process
answers); an orchestrator restarts on liveness and routes traffic on readiness.

The app puts its checks in `app.state.ready_checks` (name -> callable returning a bool) once it has
started; until then it is not ready. `app.state.ready_notes` (same form) are conditions reported beside
the checks (`notes`) that do not make the service unready: a full Redis (`redis_full`) stops new faces
(the edges keep them) but reads, erasures and retention go on, and every replica shares that Redis, so
routing traffic away would only stop what still works."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import Request
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)
RETRY_AFTER_S = 5


def readiness(request: Request) -> JSONResponse:
    """Ready to take traffic: every check passes; else 503 with Retry-After and the failing checks."""
    checks: dict[str, Callable[[], bool]] = getattr(request.app.state, "ready_checks", None) or {}
    results = {name: _passes(name, check) for name, check in checks.items()}
    ready = bool(results) and all(results.values())
    body: dict[str, object] = {"ready": ready, "checks": results}
    notes: dict[str, Callable[[], bool]] = getattr(request.app.state, "ready_notes", None) or {}
    if notes:
        body["notes"] = {name: _passes(name, note) for name, note in notes.items()}
    return JSONResponse(body, status_code=200 if ready else 503,
                        headers={} if ready else {"Retry-After": str(RETRY_AFTER_S)})


def _passes(name: str, check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception as exc:  # noqa: BLE001 - a failing check is an answer (not ready), not an error
        log.warning("readiness check %s failed: %s", name, exc)
        return False
