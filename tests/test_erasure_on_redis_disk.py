"""An erased face leaves Redis's files too: the launcher's Redis runs with an append-only file, which
keeps every write (the face's base layer included) until it is rewritten; after an erasure the analyzer
has Redis rewrite it, once for a burst of erasures. The files are searched for the base layers'
bytes: found before the erasure (so the search can fail), gone after."""

from __future__ import annotations

from pathlib import Path

import pytest
from facecoding.v1 import ingest_pb2, ingest_pb2_grpc

from devstack.stack import Stack
from service_common.redis_keys import ERASURES_COMPACT, face_key
from tests.helpers import wait_until
from tests.helpers.records import valid_record

pytestmark = pytest.mark.e2e
INTERVAL_S = 3


def redis_files(stack: Stack) -> list[Path]:
    """Every file Redis persists to: the append-only directory and any RDB snapshot."""
    root = stack.data_dir / "redis"
    return [p for p in root.rglob("*") if p.is_file() and (p.parent.name == "appendonlydir" or p.suffix == ".rdb")]


def contents(path: Path) -> bytes:
    """A file's bytes, or none if Redis removed it meanwhile (a rewrite's temporary files come and go)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def holding(stack: Stack, blob: bytes) -> list[str]:
    return [p.name for p in redis_files(stack) if blob in contents(p)]


def rewrite_done(client, after: int) -> bool:
    info = client.info("persistence")
    return info["aof_rewrites"] > after and not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]


def test_an_erasure_rewrites_the_append_only_file_once_per_burst(tmp_path: Path) -> None:
    settings = {"cloud_analyzer": {"ANALYZER_ERASURE_REWRITE_INTERVAL_S": INTERVAL_S}}
    with Stack(tmp_path / "stack", settings=settings) as stack, stack.client() as api:
        client = stack.redis.client()
        assert client.config_get("appendonly")["appendonly"] == "yes"
        records = [valid_record(camera="door", seed=i) for i in range(4)]
        for r in records:
            r.edge_id = "edge-1"
        with stack.grpc_channel("cloud_analyzer", "edge-1") as channel:
            acks = list(ingest_pb2_grpc.IngestStub(channel).Ingest(iter(records), timeout=30))
        assert {a.status for a in acks} == {ingest_pb2.IngestAck.ACCEPTED}
        wait_until(lambda: all(client.hget(face_key(r.face_id), "status") not in (None, b"pending") for r in records),
                   60, 0.2, "faces decided")
        # Found before: in the append-only log as written, and in a rewritten base file (so an RDB holds the
        # bytes as they are, and the search below would see them there too).
        assert all(holding(stack, r.base_layer) for r in records)
        before = client.info("persistence")["aof_rewrites"]
        client.bgrewriteaof()
        wait_until(lambda: rewrite_done(client, before), 30, 0.1, "the first rewrite")
        assert all(any(n.endswith(".base.rdb") for n in holding(stack, r.base_layer)) for r in records)

        before = client.info("persistence")["aof_rewrites"]
        for r in records:  # a burst of erasures
            assert api.delete(f"{stack.url('cloud_analyzer')}/v1/faces/{r.face_id}").status_code == 202
        wait_until(lambda: not any(holding(stack, r.base_layer) for r in records), 4 * INTERVAL_S + 30, 0.2,
                   "no Redis file holds an erased base layer")
        wait_until(lambda: not client.exists(ERASURES_COMPACT) and rewrite_done(client, before), 30, 0.2,
                   "no rewrite left to do")
        # The first erasure's rewrite at once, the rest of the burst in at most one more.
        assert 1 <= client.info("persistence")["aof_rewrites"] - before <= 2
        assert redis_files(stack) and not any(holding(stack, r.base_layer) for r in records)


@pytest.mark.parametrize("persistence", ["aof+rdb", "rdb", "none"])
def test_compaction_rewrites_whatever_files_redis_keeps(tmp_path: Path, persistence: str) -> None:
    """Compose's Redis also takes RDB snapshots (its default `save`): those are rewritten too (BGSAVE);
    a Redis that keeps no files has nothing to rewrite, and no file is made."""
    from cloud_analyzer.compaction import Compactor
    from cloud_analyzer.erasure import Eraser
    from devstack.stack import RedisServer

    args = {"aof+rdb": ("--save", "3600 1"), "rdb": ("--appendonly", "no", "--save", "3600 1"),
            "none": ("--appendonly", "no")}[persistence]
    server = RedisServer(tmp_path / "redis", extra_args=args)
    server.start()
    try:
        client = server.client()
        blob = valid_record(seed=7).base_layer
        client.hset(face_key("f1"), mapping={"base_layer": blob, "camera_id": "door", "captured_at_ms": 1})
        if persistence != "none":
            client.save()  # a snapshot holding the face, as Redis's own `save` schedule would make
            assert holding_in(tmp_path, blob)
        eraser, compactor = Eraser(client), Compactor(client, interval_s=3600)
        assert compactor.run_once() is False  # nothing erased: nothing to rewrite
        eraser.face("f1", key_id="test")
        assert compactor.run_once() is True
        wait_until(lambda: not any(client.info("persistence")[k] for k in (
            "aof_rewrite_in_progress", "aof_rewrite_scheduled", "rdb_bgsave_in_progress")), 30, 0.1, "rewrites")
        assert not holding_in(tmp_path, blob)
        if persistence == "none":
            assert not [p for p in (tmp_path / "redis").rglob("*") if p.is_file()]
        eraser.request_compaction()  # another erasure within the interval: waits for it
        assert compactor.run_once() is False and client.exists(ERASURES_COMPACT)
    finally:
        server.stop()


def holding_in(root: Path, blob: bytes) -> list[str]:
    return [p.name for p in root.rglob("*") if p.is_file() and blob in contents(p)]
