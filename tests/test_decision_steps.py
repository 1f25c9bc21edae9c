"""A decision writes in several slots (the face's, its camera's, its identity's, its track's, the history's)
in steps (cloud_analyzer/store.py, `record_result`). An erasure between the steps must leave nothing of the
face anywhere, and a step repeated (a worker that died and a face decided again) must change nothing."""

from __future__ import annotations

import time
import uuid

import numpy as np
import redis

from cloud_analyzer.erasure import Eraser
from cloud_analyzer.history import History
from cloud_analyzer.store import Outcome, Store
from service_common.redis_keys import (
    EVENTS_STREAM,
    camera_sightings_key,
    face_key,
    fusion_descriptor_key,
    history_key,
    identity_sightings_key,
    track_key,
)
from tests.helpers import shards
from tests.helpers.shards import read_ingest

IDENTITY = "c" * 32
NAMED = Outcome("recognised", IDENTITY, "Ann", 0.9, 0.5, 0.01)


class EraseBetweenSteps(Store):
    """A real store, with a real erasure of the face run after the decision's face step and before its
    writes in the other slots: the moment a concurrent erasure is hardest on a decision."""

    def _index_writes(self, face, *args):  # type: ignore[no-untyped-def]
        assert Eraser(self.r).face(face["face_id"], "tests") is not None
        return super()._index_writes(face, *args)


def _queued(store: Store, now: int) -> tuple[bytes, dict]:
    face_id = uuid.uuid4().hex
    store.ingest(face_id, {"base_layer": b"x", "camera_id": "cam-s", "captured_at_ms": now, "edge_id": "edge-1",
                           "track_id": "tr-s"})
    ((stream_id, _),) = read_ingest(store.r, "w", 1)
    return stream_id, store.face(face_id)


def _traces(client: redis.Redis, face_id: str, now: int) -> dict[str, object]:
    history = history_key("m1", now, "cam-s")
    return {
        "record": client.exists(face_key(face_id)),
        "fusion": client.exists(fusion_descriptor_key(face_id)),
        "shard sightings": shards.sighted(client, face_id),
        "face index": shards.in_face_index(client, face_id),
        "camera sightings": client.zscore(camera_sightings_key("cam-s"), face_id) is not None,
        "identity sightings": client.zscore(identity_sightings_key(IDENTITY), face_id) is not None,
        "track": client.zscore(track_key("tr-s"), face_id) is not None,
        "history": bool(client.execute_command("VISMEMBER", history, face_id)) if client.exists(history) else False,
        "events": [f for _, f in client.xrange(EVENTS_STREAM) if f.get(b"face_id") == face_id.encode()],
    }


def test_an_erasure_between_a_decisions_steps_leaves_nothing_of_the_face(redis_client: redis.Redis) -> None:
    store = EraseBetweenSteps(redis_client)
    store.ensure_group()
    now = int(time.time() * 1000)
    descriptor = np.ones(512, np.float32) / np.sqrt(512)
    stream_id, face = _queued(store, now)
    store.record_result(stream_id, face, NAMED, descriptor, "m1", fusion_ttl_ms=60_000)
    assert _traces(redis_client, face["face_id"], now) == {
        "record": 0, "fusion": 0, "shard sightings": False, "face index": False, "camera sightings": False,
        "identity sightings": False, "track": False, "history": False, "events": []}
    assert shards.pending(redis_client) == 0  # the entry is done: nobody decides the erased face again
    assert History(redis_client).all_above(descriptor, "m1", 0.5) == {}


def test_a_decision_repeated_changes_nothing_and_an_erasure_after_it_takes_everything(
        redis_client: redis.Redis) -> None:
    store = Store(redis_client)
    store.ensure_group()
    now = int(time.time() * 1000)
    descriptor = np.ones(512, np.float32) / np.sqrt(512)
    stream_id, face = _queued(store, now)
    store.record_result(stream_id, face, NAMED, descriptor, "m1", fusion_ttl_ms=60_000)
    once = _traces(redis_client, face["face_id"], now)
    assert once["record"] and once["identity sightings"] and once["history"] and once["track"]
    store.record_result(stream_id, face, NAMED, descriptor, "m1", fusion_ttl_ms=60_000)  # a worker's retry
    twice = _traces(redis_client, face["face_id"], now)
    assert {k: v for k, v in twice.items() if k != "events"} == {k: v for k, v in once.items() if k != "events"}
    assert Eraser(redis_client).face(face["face_id"], "tests") is not None
    gone = _traces(redis_client, face["face_id"], now)
    assert not any(v for v in gone.values()), gone
