"""Error bodies say what went wrong and what to do, never internals: no addresses, reprs or exception
class names (real reconstructor, real Redis that then goes away)."""

from __future__ import annotations

import socket
import uuid
from urllib.parse import urlsplit

import httpx

from cloud_reconstructor.api import MAX_REQUEST_BYTES
from cloud_reconstructor.api import create_app as create_reconstructor
from cloud_reconstructor.settings import ReconstructorSettings
from devstack.stack import RedisServer, free_port
from service_common.redis_client import connect
from service_common.redis_keys import face_key
from tests.helpers.payloads import EndlessBody
from tests.helpers.servers import api_client, serve

INTERNALS = ("127.0.0.1", "Error", "Exception", "Traceback", " object at 0x")


def clean(response: httpx.Response) -> bool:
    return not any(marker in response.text for marker in INTERNALS)


def test_reconstructor_errors_name_no_internals(tmp_path) -> None:
    private = RedisServer(tmp_path / "redis")
    private.start()
    try:
        settings = ReconstructorSettings(redis_url=private.url, http_port=free_port(), grpc_insecure=True)
        with serve(create_reconstructor(settings)) as url:
            viewer = api_client(private.url, ("faces:view",))
            client = connect(private.url)
            broken = uuid.uuid4().hex  # a record no analyzer writes: the catch-all answers
            client.hset(face_key(broken), mapping={"base_layer": b"x", "enhancement_levels": "many"})
            r = viewer.get(f"{url}/v1/faces/{broken}/image")
            assert r.status_code == 500 and r.json()["detail"] == "internal error"
            assert r.headers["content-type"] == "application/problem+json"
            client.close()

            host = urlsplit(url)  # a body declared past the limit: 413 before a byte of it is read
            with socket.create_connection((host.hostname, host.port), timeout=10) as s:
                s.sendall(f"POST /v1/faces/{broken}/image HTTP/1.1\r\nHost: x\r\n"
                          f"Authorization: {viewer.headers['authorization']}\r\n"
                          f"Content-Length: {MAX_REQUEST_BYTES + 1}\r\n\r\n".encode())
                assert s.recv(4096).startswith(b"HTTP/1.1 413")
            body = EndlessBody(100 * 1024 * 1024)
            r = viewer.post(f"{url}/v1/faces/{broken}/image", content=body, timeout=30)
            assert r.status_code in (405, 413) and body.sent < body.total // 2  # never read to the end

            private.stop()  # Redis gone
            r = viewer.get(f"{url}/v1/faces/{uuid.uuid4().hex}/image", timeout=30)
            assert r.status_code == 503 and r.json() == {"type": "about:blank", "title": "Service Unavailable",
                                                         "status": 503, "detail": "storage unavailable; retry later"}
            assert r.headers["content-type"] == "application/problem+json" and int(r.headers["retry-after"]) > 0
            assert clean(r), r.text
    finally:
        private.stop()
