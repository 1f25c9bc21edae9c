"""What the analyzer and the reconstructor share of their Prometheus metrics: the `/metrics` route behind
a scope, and the count of requests that failed on Redis (the problem handler answers them with 503)."""

from __future__ import annotations

from collections.abc import Callable

import redis
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from service_common.guard import require


def metrics_route(app: FastAPI, registry: CollectorRegistry, scope: str = "metrics:read") -> None:
    """`GET /metrics` in Prometheus's text format, for keys holding `scope` (not audited: Prometheus asks
    every few seconds; denials are summarised as usual)."""

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=[require(scope)])
    def prometheus_metrics() -> PlainTextResponse:
        """Prometheus metrics (scrape_config `authorization`: a metrics:read key)."""
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def count_redis_errors(app: FastAPI, count: Callable[[], None]) -> None:
    """Call `count()` for each request that fails on Redis, then answer as the app's own handler does
    (install after service_common.http.harden, which registers it)."""
    answer = app.exception_handlers[redis.RedisError]

    async def counted(request: Request, exc: Exception):  # type: ignore[no-untyped-def]
        count()
        return await answer(request, exc)

    app.add_exception_handler(redis.RedisError, counted)
