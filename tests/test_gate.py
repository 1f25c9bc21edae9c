"""The API key gate on a real analyzer (uvicorn on loopback, real Redis): authentication before any
body is read, body limits per route, denials counted per client address and summarised, ids sanitised
before they reach the audit trail, a minimal open health."""

from __future__ import annotations

import re
import socket
import time
from urllib.parse import quote, urlsplit

import httpx
import pytest

from service_common.access import AuditLog
from service_common.redis_client import connect
from tests.helpers import wait_until
from tests.helpers.servers import api_client, denial_summaries, serve_analyzer

MB = 1024 * 1024


@pytest.fixture(scope="module")
def analyzer(redis_server):
    with serve_analyzer(redis_server.url, denial_budget_per_min=20, denial_window_s=2) as (url, _):
        yield url


@pytest.fixture(autouse=True)
def fresh(redis_server, analyzer) -> None:
    """Each test starts with an empty Redis (keys, audit, denial budgets)."""
    connect(redis_server.url).flushdb()


def _send_slowly(url: str, head: str, total: int, chunk: int = 16 * 1024, pause_s: float = 0.02) -> tuple[bytes, int]:
    """POST `total` bytes of nested JSON lists in chunks, reading whatever the server answers meanwhile:
    (the answer, how many body bytes were sent when it arrived)."""
    host = urlsplit(url)
    sent = 0
    with socket.create_connection((host.hostname, host.port), timeout=30) as s:
        s.sendall(f"{head}Content-Type: application/json\r\nContent-Length: {total}\r\n\r\n".encode())
        s.setblocking(False)
        while sent < total:
            try:
                answer = s.recv(4096)
                if answer:
                    return answer, sent
            except BlockingIOError:
                pass
            try:
                sent += s.send(b"[" * min(chunk, total - sent))
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                pass
            time.sleep(pause_s)
        s.setblocking(True)
        s.settimeout(30)
        return s.recv(4096), sent


def test_no_body_is_read_before_the_key_is_checked(analyzer, redis_server) -> None:
    """A 1 MB JSON body of nested lists to POST /v1/keys: without a key, the 401 arrives while the client
    is still sending (the old code read and parsed all of it first: ~22 bytes of Python lists per byte);
    with a key, the JSON route's 64 KB limit answers 413 while it streams."""
    answer, sent = _send_slowly(analyzer, "POST /v1/keys HTTP/1.1\r\nHost: x\r\n", MB)
    assert answer.startswith(b"HTTP/1.1 401") and sent < MB // 2, (answer[:40], sent)
    admin = api_client(redis_server.url)
    auth = admin.headers["authorization"]
    answer, sent = _send_slowly(analyzer, f"POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n", MB)
    assert answer.startswith(b"HTTP/1.1 413") and sent < MB // 2, (answer[:40], sent)
    # The same body to the form route that takes photos is within its limit (megabytes): a 422 for its
    # content, not a 413.
    r = admin.post(f"{analyzer}/v1/search", files={"image": ("p.jpg", b"\xff\xd8" + b"\x00" * MB)})
    assert r.status_code in (400, 422), r.text
    assert admin.post(f"{analyzer}/v1/keys", json={"name": "ok", "scopes": ["events:read"]}).status_code == 201


def test_a_flood_of_denials_is_one_summary_and_then_refused_before_any_key_lookup(analyzer, redis_server) -> None:
    client = connect(redis_server.url)
    admin = api_client(redis_server.url)
    viewed = admin.get(f"{analyzer}/v1/faces/nope")
    assert viewed.status_code == 404  # an audited action worth keeping: face.read
    hostile = quote("x\n" * 6000, safe="")  # a 12 KB id with newlines
    started = time.time()
    codes = [httpx.get(f"{analyzer}/v1/faces/{hostile}").status_code for _ in range(60)]
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}, codes
    lookups = client.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0)
    refused = admin.get(f"{analyzer}/v1/faces/nope")  # a valid key from an address over its budget
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert client.info("commandstats").get("cmdstat_hgetall", {}).get("calls", 0) == lookups  # no key lookup
    windows = (time.time() - started) / 2 + 2  # the test's analyzer sums denials over 2 s windows

    summaries = denial_summaries(redis_server.url)
    assert 1 <= len(summaries) <= windows, len(summaries)
    assert {(e.client, e.outcome, e.action) for e in summaries} == {("127.0.0.1", "denied", "access.denied")}
    details = " ".join(e.detail for e in summaries)
    counted = {s: sum(int(n) for n in re.findall(rf"(\d+)x {s}", details)) for s in (401, 429)}
    assert counted == {401: 20, 429: 41}, details
    assert "GET /v1/faces/{face_id}" in details
    entries = AuditLog(client).query(limit=1000)[0]
    assert len(entries) == len(summaries) + 1 and entries[-1].action == "face.read"
    assert not any("\n" in v or "xx" in v for e in entries for v in e.__dict__.values() if isinstance(v, str))


def test_windows_end_and_are_summarised_by_the_service_itself(analyzer, redis_server) -> None:
    """The service's own flusher writes the summary once the (2 s, in this test) window has ended."""
    for _ in range(3):
        assert httpx.get(f"{analyzer}/v1/sightings", headers={"authorization": "Bearer nope"}).status_code == 401
    audit = AuditLog(connect(redis_server.url))

    def counted(entries: list) -> int:  # "N denied in 2 s from ...: Nx 401; first: ..."
        return sum(int(e.detail.split(" denied", 1)[0]) for e in entries)

    found = wait_until(lambda: (f := audit.query(action="access.denied")[0]) and counted(f) == 3 and f, 15, 0.2,
                       "the three denials summarised")
    # The three requests may straddle a window's edge: then two summaries share them.
    assert 1 <= len(found) <= 2
    assert all(re.search(r"^\d denied in 2 s .*\dx 401", e.detail) for e in found), [e.detail for e in found]


def test_invalid_ids_reach_the_audit_hashed_and_bounded(analyzer, redis_server) -> None:
    admin = api_client(redis_server.url)
    hostile = quote("bad id\r\n" + "y" * 12_000, safe="")
    assert admin.get(f"{analyzer}/v1/faces/{hostile}").status_code == 422
    (entry,) = AuditLog(connect(redis_server.url)).query(action="face.read")[0]
    assert entry.outcome == "failed" and entry.status == 422
    assert entry.face_id.startswith("invalid:") and len(entry.face_id) == len("invalid:") + 16
    assert all(len(v) <= 500 and "\n" not in v and "\r" not in v
               for v in entry.__dict__.values() if isinstance(v, str))


def test_open_health_says_only_status_and_the_detail_needs_admin(analyzer, redis_server) -> None:
    assert httpx.get(f"{analyzer}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{analyzer}/v1/health").status_code == 401
    assert api_client(redis_server.url, ("sightings:read",)).get(f"{analyzer}/v1/health").status_code == 403
    detail = api_client(redis_server.url).get(f"{analyzer}/v1/health").json()
    assert detail["identities"] == 0 and detail["audit"]["dropped_over_cap"] == 0
    assert detail["audit"]["retention_days"] == 365
