"""Server-Sent Events from a real analyzer (REST on uvicorn, gRPC Ingest, workers) over a real Redis:
content, filters, pings, resuming with Last-Event-ID, refusals, and the hub dropping a client that
cannot keep up."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import redis

from cloud_analyzer.events.schema import EventFilter
from cloud_analyzer.events.sse_hub import EventHub
from service_common.access import AuditLog, new_token
from service_common.redis_client import connect, connect_async
from service_common.redis_keys import EVENTS_STREAM
from tests.helpers import free_port, wait_until
from tests.helpers.records import valid_record
from tests.helpers.servers import api_client, serve_analyzer
from tests.helpers.sse import SseClient

FIELDS = {"id", "type", "face_id", "camera_id", "captured_at_ms", "decided_at_ms", "captured_at", "decided_at",
          "status", "identity_id",
          "identity_name", "cluster_id", "track_id", "quality", "similarity", "threshold", "fpir",
          # set on face.corrected only (null on decisions)
          "action", "previous_identity_id", "rejected_identity_id", "corrected_by"}


@pytest.fixture(scope="module")
def served(redis_server):
    with serve_analyzer(redis_server.url, sse_ping_s=0.3, webhooks_enabled=False) as (url, stub):
        yield url, stub, api_client(redis_server.url, ("events:read",), "sse-reader"), redis_server.url


def ingest(stub, *cameras: str, track: str = "") -> list[str]:
    records = [valid_record(camera, seed=i) for i, camera in enumerate(cameras)]
    for r in records:
        r.track_id = track
    acks = list(stub.Ingest(iter(records), timeout=30))
    assert all(a.status == a.ACCEPTED for a in acks), acks
    return [r.face_id for r in records]


def stream(url: str, client, **kw) -> SseClient:
    sse = SseClient(f"{url}/v1/events/stream", dict(client.headers), **kw)
    wait_until(lambda: sse.comments or sse.status not in (None, 200) or sse.ended.is_set(), 10, 0.05,
               "the stream's first ping")
    return sse


def test_stream_carries_every_decision_with_its_fields_and_pings(served) -> None:
    url, stub, client, _ = served
    everything, door_only = stream(url, client), stream(url, client, params={"camera_id": "door"})
    try:
        faces = ingest(stub, "door", "yard", "door", track="trk-1")
        wait_until(lambda: len(everything.events) >= 3, 30, 0.1, "three events")
        wait_until(lambda: len(door_only.events) >= 2, 30, 0.1, "two door events")
        got = {e["data"]["face_id"]: e for e in everything.events}
        assert set(got) == set(faces)
        for event in everything.events:
            data = event["data"]
            assert set(data) == FIELDS and event["id"] == data["id"] and event["event"] == "sighting"
            assert data["status"] == "unknown" and data["identity_id"] is None
            assert data["cluster_id"], "an unknown face's event names its cluster"
            assert data["track_id"] == "trk-1" and data["threshold"] is not None and data["fpir"] is not None
            assert data["decided_at_ms"] >= data["captured_at_ms"]
        assert [e["data"]["camera_id"] for e in door_only.events] == ["door", "door"]
        assert everything.comments, "pings keep an idle stream open"
        watcher = api_client(served[3], ("metrics:read",), "sse-metrics")  # deliveries per channel
        scraped = watcher.get(f"{url}/metrics").text
        sent = [line for line in scraped.splitlines()
                if line.startswith('analyzer_event_deliveries_total{channel="sse",outcome="ok"}')]
        assert sent and float(sent[0].split()[-1]) >= 5, scraped[-2000:]
        recognised_only = stream(url, client, params={"status": "recognised"})
        ingest(stub, "door")
        wait_until(lambda: len(everything.events) >= 4, 30, 0.1, "the fourth event")
        assert recognised_only.events == []  # an unknown face is not `recognised`
        recognised_only.close()
        # Ids grow: they are the Redis stream's.
        assert everything.ids == sorted(everything.ids, key=lambda i: tuple(map(int, i.split("-"))))
    finally:
        everything.close()
        door_only.close()
    # Each stream is audited (once it ends: the server notices the client gone at its next ping).
    audit = AuditLog(connect(served[3]))
    wait_until(lambda: len(audit.query(action="events.stream")[0]) >= 3, 10, 0.1, "three audited streams")


def test_last_event_id_resumes_without_loss_or_repeat(served) -> None:
    url, stub, client, _ = served
    first = stream(url, client)
    try:
        ingest(stub, "gate", "gate")
        wait_until(lambda: len(first.events) >= 2, 30, 0.1, "two events")
    finally:
        first.close()
    resume_after = first.events[-1]["id"]
    missed = ingest(stub, "gate", "gate", "gate")  # while no client is connected
    second = stream(url, client, last_event_id=resume_after)
    try:
        wait_until(lambda: len(second.events) >= 3, 30, 0.1, "the three missed events")
        more = ingest(stub, "gate")  # and then live
        wait_until(lambda: len(second.events) >= 4, 30, 0.1, "the live event")
        assert [e["data"]["face_id"] for e in second.events] == missed + more
    finally:
        second.close()


def test_refusals(served, redis_server) -> None:
    url, _, client, _ = served
    assert client.get(f"{url}/v1/events/stream", headers={"Last-Event-ID": "nope"}).status_code == 422
    assert client.get(f"{url}/v1/events/stream", headers={"Last-Event-ID": "99999999999999999999-0"}).status_code == 422
    assert client.get(f"{url}/v1/events/stream", params={"status": "maybe"}).status_code == 422
    assert client.get(f"{url}/v1/events/stream", params={"camera_id": "../x"}).status_code == 422
    outsider = api_client(redis_server.url, ("sightings:read",), "no-events")
    assert outsider.get(f"{url}/v1/events/stream").status_code == 403


def test_a_client_that_cannot_keep_up_is_dropped_not_buffered(redis_client: redis.Redis, redis_server) -> None:
    async def scenario() -> tuple[int, int, bool]:
        hub = EventHub(connect_async(redis_server.url), capacity=3, block_ms=100)
        received: list[str] = []
        stalled = asyncio.Event()

        async def slow_client() -> None:
            async for event in hub.subscribe(EventFilter(), None):
                received.append(event.id)
                await stalled.wait()  # never reads on: its queue fills

        task = asyncio.create_task(slow_client())
        await asyncio.sleep(0.3)
        for i in range(20):
            await hub.r.xadd(EVENTS_STREAM, {"type": "face.unknown", "face_id": f"f{i}", "camera_id": "c",
                                             "captured_at_ms": 1, "status": "unknown"})
        for _ in range(50):
            if hub.dropped_clients:
                break
            await asyncio.sleep(0.1)
        stalled.set()
        await asyncio.wait_for(task, 5)  # its stream ends (the client would reconnect with Last-Event-ID)
        dropped, left = hub.dropped_clients, hub.clients
        await hub.close()
        await hub.r.aclose()
        return dropped, left, len(received) <= 1 + 3

    dropped, left, bounded = asyncio.run(scenario())
    assert dropped == 1 and left == 0 and bounded


def test_open_streams_end_when_the_analyzer_is_stopped(redis_server, tmp_path) -> None:
    """SIGTERM to a real `python -m cloud_analyzer` with a client connected: the stream ends and the
    process exits promptly (an open stream must not hold the shutdown)."""
    connect(redis_server.url).flushdb()
    token = new_token()
    (tmp_path / "admin_key").write_text(token + "\n")
    http_port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ANALYZER_")},
           "ANALYZER_REDIS_URL": redis_server.url, "ANALYZER_HTTP_PORT": str(http_port),
           "ANALYZER_GRPC_PORT": str(free_port()), "ANALYZER_GRPC_INSECURE": "true",
           "ANALYZER_ADMIN_KEY_FILE": str(tmp_path / "admin_key"), "ANALYZER_EDGES": '{"edge-t": "127.0.0.1:1"}',
           "ANALYZER_SSE_PING_S": "0.5"}
    log = (tmp_path / "analyzer.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "cloud_analyzer"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http_port}"
    try:
        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None  # exited: fail below with its log
        wait_until(healthy, 120, 0.2, "the analyzer up")
        assert proc.poll() is None, (tmp_path / "analyzer.log").read_text()[-2000:]
        sse = stream(url, httpx.Client(headers={"Authorization": f"Bearer {token}"}))
        assert sse.status == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: the exit status is -SIGTERM.
        assert proc.wait(20) in (0, -signal.SIGTERM)
        assert sse.ended.wait(5), "the client's stream ended"
        assert time.monotonic() - started < 15
        log.flush()
        assert "Application shutdown complete" in (tmp_path / "analyzer.log").read_text()  # the lifespan ran
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
