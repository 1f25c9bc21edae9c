"""Run a FastAPI app on a real loopback port (uvicorn in a thread) for service-level tests."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from devstack.stack import free_port
from service_common.access import AuditEntry, AuditLog, KeyStore, RateLimiter, new_token
from service_common.access.denials import Denials
from service_common.redis_client import connect


@contextmanager
def serve(app: FastAPI, timeout_s: float = 60) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def edge_admin(settings: object) -> dict[str, str]:
    """Headers with an in-process edge's admin token (create_app made it in its data dir)."""
    from edge_encoder.admin import load_admin_token

    return {"authorization": f"Bearer {load_admin_token(settings.admin_token_path)}"}  # type: ignore[attr-defined]


def api_client(redis_url: str, scopes: tuple[str, ...] = ("admin",), name: str = "tests") -> httpx.Client:
    """An HTTP client holding a fresh API key with these scopes, registered straight in Redis."""
    token = new_token()
    KeyStore(connect(redis_url)).register(token, name, list(scopes))
    return httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60)


@contextmanager
def serve_analyzer(redis_url: str, **overrides: object) -> Iterator[tuple[str, object]]:
    """A real analyzer (REST on uvicorn, gRPC Ingest, workers) over a flushed Redis that trusts edge
    `edge-t`: (REST url, Ingest stub). `overrides`: other AnalyzerSettings fields."""
    import grpc
    from facecoding.v1 import ingest_pb2_grpc

    from cloud_analyzer.api import create_app
    from cloud_analyzer.settings import AnalyzerSettings

    connect(redis_url).flushdb()
    grpc_port = free_port()
    with tempfile.TemporaryDirectory(prefix="analyzer-secrets-") as secrets:  # the first admin key's file
        settings = AnalyzerSettings(redis_url=redis_url, grpc_port=grpc_port, http_port=free_port(),
                                    edges={"edge-t": "127.0.0.1:1"}, max_request_bytes=4 * 1024 * 1024,
                                    grpc_insecure=True, admin_key_file=Path(secrets) / "admin_key",
                                    **overrides)
        with serve(create_app(settings)) as url, grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            yield url, ingest_pb2_grpc.IngestStub(channel)


def denial_summaries(redis_url: str, password: str | None = None) -> list[AuditEntry]:
    """The `access.denied` audit entries, after summarising every pending denial window now (as the
    services' flushers do once a window has ended)."""
    client = connect(redis_url, password=password)
    audit = AuditLog(client)
    Denials(client, RateLimiter(client), audit, 1).flush(now_ms=int(time.time() * 1000) + 86_400_000)
    return audit.query(action="access.denied", limit=1000)[0]
