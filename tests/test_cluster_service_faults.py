"""Redis Cluster faults under the running services: a real analyzer (REST, gRPC Ingest) on a local cluster
of real redis-server processes (tests/helpers/redis_cluster.py), fed by an edge's real Outbox and Uploader
while the fault happens. After each, every face the edge saw acknowledged is stored exactly once: its
record on one primary, its id once in its shard's face index and once in the ingest streams.

- a primary SIGKILLed mid-ingest: its replica takes over (the analyzer waits for a replica before it
  acknowledges a face: cloud_analyzer/replicated_ingest.py);
- slots of face shards moved between primaries mid-ingest (ASK, MOVED, TRYAGAIN under the ingest script);
- every primary full (maxmemory, noeviction): the edge sees RESOURCE_EXHAUSTED and keeps its faces,
  retention frees memory, ingest resumes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cloud_analyzer.api import create_app
from cloud_analyzer.ingest_service import validate
from cloud_analyzer.retention import Retention
from cloud_analyzer.settings import AnalyzerSettings
from cloud_analyzer.store import Store
from devstack.stack import free_port
from edge_encoder.outbox import Outbox
from edge_encoder.uploader import Uploader
from service_common.redis_keys import FACE_INDEXES, INGEST_STREAMS, face_key, face_shard, faces_key
from tests.helpers import wait_until
from tests.helpers.records import valid_record, variant
from tests.helpers.redis_cluster import LocalCluster
from tests.helpers.servers import serve

DAY_MS = 86_400_000
pytestmark = pytest.mark.slow  # a cluster of real nodes, an analyzer, an edge uploader, and the fault


@contextlib.contextmanager
def analyzer_on(cluster: LocalCluster, tmp_path: Path) -> Iterator[int]:
    """A real analyzer on the cluster (no recognition workers: the faults are about what ingest stores);
    its Ingest port."""
    grpc_port = free_port()
    settings = AnalyzerSettings(redis_url=cluster.url, grpc_port=grpc_port, http_port=free_port(),
                                grpc_insecure=True, workers=0, retention_interval_s=3600,
                                edges={"edge-t": "127.0.0.1:1"}, admin_key_file=tmp_path / "admin_key")
    with serve(create_app(settings)):
        yield grpc_port


class Edge:
    """An edge's outbox, filled by a camera thread (`rate` faces a second) and drained by its uploader."""

    def __init__(self, tmp_path: Path, grpc_port: int, rate: float = 200.0) -> None:
        self.outbox = Outbox(tmp_path / "outbox.sqlite3")
        self.uploader = Uploader(self.outbox, f"127.0.0.1:{grpc_port}", batch=16, timeout_s=10, retry_max_s=0.5)
        self.template, self.rate = valid_record(), rate
        self.made: list[str] = []
        self._stop = threading.Event()
        self._camera = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Edge:
        self.uploader.start()
        self._camera.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_camera()
        self.uploader.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            records = [variant(self.template) for _ in range(max(1, int(self.rate / 20)))]
            self.outbox.put_many([(r.face_id, r.SerializeToString()) for r in records])
            self.made += [r.face_id for r in records]
            self._stop.wait(0.05)

    def stop_camera(self) -> None:
        self._stop.set()
        self._camera.join(5)

    def acknowledged(self) -> set[str]:
        """The faces the cloud acknowledged: made and no longer in the outbox (none is rejected here)."""
        waiting = {face_id for face_id, _ in self.outbox.pending(1_000_000)}
        return set(self.made) - waiting

    def drain(self, timeout_s: float = 60) -> None:
        self.stop_camera()
        wait_until(lambda: len(self.outbox) == 0, timeout_s=timeout_s)
        assert self.outbox.rejected_count() == 0 and self.uploader.quarantined == 0


def faces_key_of(face_id: str) -> str:
    return faces_key(face_shard(face_id))


def stored_once(cluster: LocalCluster, face_ids: set[str]) -> None:
    """Each face: its record on exactly one primary, once in the face indexes and the ingest streams."""
    client = cluster.client()
    records: Counter[str] = Counter()
    for node in cluster.primaries:
        with cluster.node_client(node) as c:
            records.update(k.rpartition(":")[2] for k in c.scan_iter(match="fc:{f*}:face:*", count=1000))
    indexed = Counter(m.decode() for key in FACE_INDEXES for m in client.zrange(key, 0, -1))
    queued = Counter(f[b"face_id"].decode() for s in INGEST_STREAMS for _, f in client.xrange(s))
    for face_id in face_ids:
        assert (records[face_id], indexed[face_id], queued[face_id]) == (1, 1, 1), face_id
    assert all(client.exists(face_key(f)) for f in face_ids)


def test_a_primary_killed_during_ingest_loses_no_acknowledged_face(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "redis") as cluster, analyzer_on(cluster, tmp_path) as port, \
            Edge(tmp_path, port) as edge:
        wait_until(lambda: len(edge.acknowledged()) >= 300, timeout_s=60)
        victim = cluster.primary_of(faces_key(0))
        cluster.kill(victim)
        before = edge.acknowledged()  # acknowledged by the time the primary died
        cluster.wait_failover()
        assert victim not in cluster.primaries
        wait_until(lambda: len(edge.acknowledged()) >= len(before) + 300, timeout_s=60)  # ingest goes on
        edge.drain()
        stored_once(cluster, set(edge.made))  # `before` included: nothing the dead primary acknowledged is lost
        assert before <= set(edge.made) and len(set(edge.made) - before) >= 300
        shard0 = {f for f in set(edge.made) - before if faces_key(0) == faces_key_of(f)}
        assert shard0  # the dead primary's face shards took faces again, on its successor
        waits = 0
        for node in cluster.primaries:  # the analyzer waited for a replica before acknowledging
            with cluster.node_client(node) as c:
                waits += int(c.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
        assert waits > 0


def test_face_shards_move_between_primaries_during_ingest(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "redis", replicas=0) as cluster, analyzer_on(cluster, tmp_path) as port, \
            Edge(tmp_path, port) as edge:
        wait_until(lambda: len(edge.acknowledged()) >= 200, timeout_s=60)
        client = cluster.client()
        slots = sorted({client.keyslot(faces_key(s)) for s in range(len(FACE_INDEXES))})
        source, target = cluster.owner(slots[0]), cluster.owner(slots[-1])
        moving = [s for s in slots if cluster.owner(s) is source]
        moved = sum(cluster.migrate_slots(s, s, target, batch=10) for s in moving)
        assert moved > 0 and all(cluster.owner(s) is target for s in moving)
        wait_until(lambda: len(edge.acknowledged()) >= 600, timeout_s=60)
        edge.drain()
        with cluster.node_client(source) as c:
            assert all(c.execute_command("CLUSTER COUNTKEYSINSLOT", s) == 0 for s in moving)
        stored_once(cluster, set(edge.made))


def fill_every_primary(cluster: LocalCluster, store: Store) -> int:
    """Old faces until every primary refuses them for want of memory, then each primary's limit just below
    what it uses (a client's buffers shrinking would otherwise let a few faces in); how many went in."""
    fields, old = validate(valid_record(seed=9)), int(time.time() * 1000) - 10 * DAY_MS
    stored, refused_in_a_row = 0, 0
    while refused_in_a_row < 64:  # 64 random ids in a row refused: every face shard's primary is full
        try:
            store.ingest(f"{stored + refused_in_a_row:08d}{time.time_ns():024x}", {**fields, "captured_at_ms": old})
            stored, refused_in_a_row = stored + 1, 0
        except redis.exceptions.OutOfMemoryError:
            refused_in_a_row += 1
    for node in cluster.primaries:
        with cluster.node_client(node) as c:
            c.config_set("maxmemory", int(c.info("memory")["used_memory"]) - 65_536)
    return stored


def test_a_full_cluster_pushes_back_and_retention_lets_ingest_resume(tmp_path: Path) -> None:
    with LocalCluster(tmp_path / "redis", replicas=0) as cluster:
        for node in cluster.primaries:
            with cluster.node_client(node) as c:
                c.config_set("maxmemory-policy", "noeviction")
                c.config_set("maxmemory", int(c.info("memory")["used_memory"]) + 3 * 1024 * 1024)
        with analyzer_on(cluster, tmp_path) as port:
            client = cluster.client()
            store = Store(client)
            old = fill_every_primary(cluster, store)
            assert old > 1000
            with Edge(tmp_path, port, rate=100) as edge:
                wait_until(lambda: edge.uploader.errors >= 3, timeout_s=30)
                assert edge.uploader.last_error.startswith("RESOURCE_EXHAUSTED")
                assert not edge.acknowledged()  # every face still at the edge
                done = Retention(client, max_age_s=DAY_MS / 1000, interval_s=60).run_locked()
                assert done is not None and done.faces_expired == old
                made = len(edge.made)
                wait_until(lambda: len(edge.acknowledged()) >= made, timeout_s=60)  # the backlog drains
                edge.drain()
            stored_once(cluster, set(edge.made))
