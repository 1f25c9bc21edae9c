"""A full Redis (maxmemory reached, `noeviction`, as compose runs it) refuses new faces but still lets
retention free memory and an erasure complete, and the edges see back-pressure and keep their faces
until it has: measured on a real redis-server with a small maxmemory filled with faces until writes fail
with OOM."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import httpx
import pytest
import redis
from facecoding.v1 import ingest_pb2_grpc

from cloud_analyzer.api import create_app
from cloud_analyzer.ingest_service import FULL_RETRY_MS, validate
from cloud_analyzer.retention import Retention
from cloud_analyzer.settings import AnalyzerSettings
from cloud_analyzer.store import Store
from devstack.stack import RedisServer, free_port
from edge_encoder.outbox import Outbox
from edge_encoder.uploader import Uploader, pushback_s
from service_common.redis_keys import AUDIT_STREAM, ERASURES_PENDING, RETENTION_LOCK, face_key
from service_common.redis_oom import atomic_writes, set_nx_px
from tests.helpers import shards, wait_until
from tests.helpers.records import valid_record
from tests.helpers.servers import serve

DAY_MS = 86_400_000


@pytest.fixture
def full_redis(tmp_path: Path):
    server = RedisServer(tmp_path / "redis", extra_args=("--maxmemory", "8mb", "--maxmemory-policy", "noeviction"))
    server.start()
    yield server
    server.stop()


def fill(store: Store, fields: dict, captured_ms: int, first: int = 0) -> int:
    """Faces (ids numbered from `first`) until Redis refuses one for want of memory; how many went in."""
    n = first
    while True:
        try:
            store.ingest(f"{n:032x}", {**fields, "captured_at_ms": captured_ms})
        except redis.exceptions.OutOfMemoryError:
            return n - first
        n += 1


def fill_until_refused(client: redis.Redis, store: Store, fields: dict, captured_ms: int, tries: int = 5) -> int:
    """Fill, then check that an ordinary write is refused: Redis may free a little between the two (its
    own buffers, a key expiring, the running service's background work), so fill again until it holds."""
    total = 0
    for _ in range(tries):
        # New ids each time: a face id already stored is not stored again, so refilling from 0 would
        # count the same faces twice.
        total += fill(store, fields, captured_ms, first=total)
        try:
            client.hset("probe", "x", 1)
        except redis.exceptions.OutOfMemoryError:
            # Full by a few KB only: a client's buffers shrinking (Redis counts them) would let a few more faces
            # in. The limit goes 64 KB below what is used, so it stays full until something is deleted.
            client.config_set("maxmemory", int(client.info("memory")["used_memory"]) - 65_536)
            return total
        client.delete("probe")
    raise AssertionError(f"Redis still accepted writes after {tries} fills")


def test_what_redis_refuses_when_full_and_the_writes_that_still_go_through(full_redis) -> None:
    client = full_redis.client()
    fill(Store(client), validate(valid_record()), int(time.time() * 1000))
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.set(RETENTION_LOCK, 1, nx=True, px=1000)  # how retention used to lock: never again once full
    assert set_nx_px(client, RETENTION_LOCK, 1, 1000) and not set_nx_px(client, RETENTION_LOCK, 1, 1000)
    assert atomic_writes(client, [("INCR", "n"), ("EXPIRE", "n", 2)]) == [1, 1]


def test_retention_and_an_erasure_work_on_a_full_redis(full_redis, tmp_path: Path) -> None:
    client = full_redis.client()
    store = Store(client)
    settings = AnalyzerSettings(redis_url=full_redis.url, grpc_port=free_port(), http_port=free_port(),
                                grpc_insecure=True, workers=0, retention_interval_s=3600,
                                edges={"edge-t": "127.0.0.1:1"}, admin_key_file=tmp_path / "admin_key")
    with serve(create_app(settings)) as url:  # started (admin key, ingest group) while Redis has room
        admin = httpx.Client(headers={"authorization": f"Bearer {(tmp_path / 'admin_key').read_text().strip()}"},
                             timeout=60)
        recent = [valid_record(seed=i) for i in range(2)]
        for record in recent:
            store.ingest(record.face_id, validate(record))
        old = fill_until_refused(client, store, validate(valid_record(seed=9)), int(time.time() * 1000) - 10 * DAY_MS)
        assert old > 1000
        full = client.info("memory")["used_memory"]

        # An erasure on the full Redis: answered, the cloud part done, the edge's part queued, audited.
        erased = admin.delete(f"{url}/v1/faces/{recent[0].face_id}")
        assert erased.status_code == 202, erased.text
        report = erased.json()
        assert report["faces"] == 1 and report["edges"]["edge-t"]["status"] == "pending"
        assert not client.exists(face_key(recent[0].face_id))
        assert client.sismember(ERASURES_PENDING, f"{report['erasure_id']}|edge-t")
        audited = [fields[b"action"] for _, fields in client.xrevrange(AUDIT_STREAM, count=10)]
        assert b"face.erase" in audited

        # Retention on the full Redis: takes its lock, expires the old faces, and memory comes back.
        fill_until_refused(client, store, validate(valid_record(seed=9)), int(time.time() * 1000) - 10 * DAY_MS)
        done = Retention(client, max_age_s=DAY_MS / 1000, interval_s=60).run_locked()
        assert done is not None and done.faces_expired >= old
        after = client.info("memory")["used_memory"]
        assert after < full / 2, (full, after)
        assert client.hset("probe", "x", 1) == 1  # writes are accepted again
        assert client.exists(face_key(recent[1].face_id))  # what retention keeps stays


@pytest.mark.slow
def test_a_full_redis_pushes_back_on_the_edge_which_keeps_its_faces_until_retention_frees_memory(
        full_redis, tmp_path: Path) -> None:
    """Fill memory: Ingest answers RESOURCE_EXHAUSTED, the edge's uploader keeps every face not acknowledged
    and retries, health and metrics say Redis is full; retention frees memory and the backlog drains, each
    face stored once."""
    client = full_redis.client()
    store = Store(client)
    grpc_port = free_port()
    settings = AnalyzerSettings(redis_url=full_redis.url, grpc_port=grpc_port, http_port=free_port(),
                                grpc_insecure=True, workers=0, retention_interval_s=3600,
                                edges={"edge-t": "127.0.0.1:1"}, admin_key_file=tmp_path / "admin_key")
    records = [valid_record(seed=i) for i in range(24)]
    with serve(create_app(settings)) as url, grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        admin = httpx.Client(headers={"authorization": f"Bearer {(tmp_path / 'admin_key').read_text().strip()}"},
                             timeout=60)
        assert admin.get(f"{url}/readyz").json()["notes"] == {"redis_full": False}
        fill_until_refused(client, store, validate(valid_record(seed=99)), int(time.time() * 1000) - 10 * DAY_MS)

        # What an edge gets: a retryable status that names the cause, with a pushback, and no ack.
        with pytest.raises(grpc.RpcError) as refused:
            list(ingest_pb2_grpc.IngestStub(channel).Ingest(iter(records[:1]), timeout=10))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "full" in refused.value.details()
        assert pushback_s(refused.value) == FULL_RETRY_MS / 1000  # the uploader waits at least that long

        outbox = Outbox(tmp_path / "outbox.sqlite3")
        outbox.put_many([(r.face_id, r.SerializeToString()) for r in records])
        uploader = Uploader(outbox, f"127.0.0.1:{grpc_port}", batch=8, timeout_s=10, retry_max_s=0.5)
        uploader.start()
        try:
            wait_until(lambda: uploader.errors >= 3, timeout_s=30)
            assert uploader.last_error.startswith("RESOURCE_EXHAUSTED")
            waiting = {face_id for face_id, _ in outbox.pending(1000)}
            acked = {r.face_id for r in records} - waiting
            # At most what Redis still had room for went in: its own buffers move used_memory by tens of KB
            # at rest (measured: 32 KB within half a second on a full 8 MB Redis), room for ~1.8 KB faces.
            assert len(waiting) >= len(records) // 2
            assert all(client.exists(face_key(f)) for f in acked)  # nothing acknowledged is lost

            health = admin.get(f"{url}/v1/health").json()
            assert health["status"] == "redis_full" and health["redis_memory"]["full"]
            assert health["redis_memory"]["policy"] == "noeviction"
            ready = admin.get(f"{url}/readyz")
            assert ready.status_code == 200 and ready.json()["notes"] == {"redis_full": True}
            scraped = admin.get(f"{url}/metrics").text
            assert metric(scraped, "analyzer_redis_full") == 1
            assert metric(scraped, "analyzer_ingest_refused_full_total") >= 3
            assert metric(scraped, "analyzer_redis_memory_used_bytes") > metric(scraped,
                                                                                "analyzer_redis_memory_max_bytes")

            done = Retention(client, max_age_s=DAY_MS / 1000, interval_s=60).run_locked()
            assert done is not None and done.faces_expired > 1000
            wait_until(lambda: len(outbox) == 0, timeout_s=30)  # the backlog drains by itself
        finally:
            uploader.stop()
        assert uploader.quarantined == 0 and outbox.rejected_count() == 0
        queued = [fields[b"face_id"].decode() for fields in shards.ingest_entries(client)]
        for r in records:  # every face stored, and queued for its decision exactly once
            assert client.exists(face_key(r.face_id)) and queued.count(r.face_id) == 1, r.face_id
        assert metric(admin.get(f"{url}/metrics").text, "analyzer_redis_full") == 0
        assert admin.get(f"{url}/v1/health").json()["status"] == "ok"


def metric(scraped: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus's text format."""
    return next(float(line.split()[1]) for line in scraped.splitlines() if line.startswith(f"{name} "))
