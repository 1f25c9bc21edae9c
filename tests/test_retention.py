"""Retention on real Redis: old faces and events go, processed ingest entries are trimmed, dead
consumers are removed, and a steady load keeps Redis bounded; the edge expires its pixels."""

from __future__ import annotations

import time

import pytest
import redis

from cloud_analyzer.ingest_service import validate
from cloud_analyzer.retention import Retention
from cloud_analyzer.store import Outcome, Store
from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.outbox import Outbox
from edge_encoder.retention import EdgeRetention
from service_common.redis_keys import (
    EVENTS_STREAM,
    GROUP,
    HISTORY_DAYS,
    camera_sightings_key,
    history_cameras_key,
    history_days_member,
    history_key,
    history_pattern,
    ingest_stream_of,
)
from tests.helpers import shards
from tests.helpers.records import valid_record
from tests.helpers.shards import read_ingest


def ingest(store: Store, captured_ms: int, camera: str = "cam-r") -> str:
    record = valid_record(camera=camera, captured_ms=captured_ms)
    store.ingest(record.face_id, validate(record))
    return record.face_id


def decide_all(store: Store, consumer: str = "w1") -> int:
    """What a recognition worker does with each queued face, minus the recognition."""
    done = 0
    while rows := read_ingest(store.r, consumer, 100):
        for stream_id, fields in rows:
            face = store.face(fields[b"face_id"].decode())
            store.record_result(stream_id, face, Outcome("unknown", similarity=0.1, threshold=0.5, fpir=0.01))
            done += 1
    return done


def test_old_faces_events_and_processed_ingest_entries_go(redis_client: redis.Redis) -> None:
    store = Store(redis_client)
    store.ensure_group()
    now = int(time.time() * 1000)
    old = [ingest(store, now - 3 * 86_400_000 - i) for i in range(3)]
    new = [ingest(store, now - 1000 - i) for i in range(2)]
    assert decide_all(store) == 5
    left_pending = ingest(store, now - 500)  # delivered to no one yet: must survive the trim
    redis_client.xreadgroup(GROUP, "w2", {ingest_stream_of(left_pending): ">"}, count=1)  # delivered, not acked
    redis_client.xgroup_createconsumer(ingest_stream_of(left_pending), GROUP, "gone")  # died holding nothing

    retention = Retention(redis_client, max_age_s=2 * 86400, dead_consumer_s=0.05)
    time.sleep(0.1)
    done = retention.run_once(now)
    assert done.faces_expired == 3 and done.ingest_trimmed == 5
    assert all(store.face(f) is None for f in old) and all(store.face(f) for f in new + [left_pending])
    assert shards.sightings(redis_client) == set(new)
    assert shards.stored_faces(redis_client) == {*new, left_pending}
    assert redis_client.zcard(camera_sightings_key("cam-r")) == 2
    assert [f[b"face_id"].decode() for f in shards.ingest_entries(redis_client)] == [left_pending]
    assert redis_client.xlen(EVENTS_STREAM) == 5  # events age from when they happened: all just now
    consumers = {c["name"].decode() for c in shards.consumers(redis_client)}
    assert "gone" not in consumers and "w2" in consumers  # w2 still holds a face
    assert retention.run_once(now).faces_expired == 0  # idempotent
    later = retention.run_once(now + 3 * 86_400_000)
    assert later.faces_expired == 3 and later.events_trimmed == 5 and shards.stored_count(redis_client) == 0


@pytest.mark.slow
def test_a_steady_load_keeps_redis_bounded(redis_client: redis.Redis) -> None:
    """200 faces/s for 6 s, kept 1 s: faces, sightings and the ingest stream stay at what one retention
    period holds instead of growing with the run."""
    store = Store(redis_client)
    store.ensure_group()
    retention = Retention(redis_client, max_age_s=1.0, dead_consumer_s=3600)
    sizes = []
    for _ in range(60):  # a fixed count, not 6 s of wall clock: a slow machine runs longer, never fewer rounds
        for _ in range(20):
            ingest(store, int(time.time() * 1000))
        decide_all(store)
        time.sleep(0.1)
        if len(sizes) % 5 == 0:
            retention.run_once()
        sizes.append((shards.stored_count(redis_client), shards.ingest_len(redis_client),
                      redis_client.xlen(EVENTS_STREAM)))
    faces, stream, events = (max(s[i] for s in sizes[-20:]) for i in range(3))
    ingested = 20 * len(sizes)
    assert ingested >= 600
    assert faces <= 400 and stream <= 200 and events <= 400, (faces, stream, events, ingested)


def test_the_edge_expires_layers_crops_and_dead_letters(tmp_path) -> None:
    store = EnhancementStore(tmp_path / "e.sqlite3", 100, 10**8)
    outbox = Outbox(tmp_path / "o.sqlite3")
    store.put("a", b"container", 2, b"crop")
    outbox.put("r", b"record")
    outbox.reject("r", "invalid")
    retention = EdgeRetention(store, outbox, max_age_s=3600)
    assert retention.run_once() == 0 and store.get("a") is not None
    assert retention.run_once(now=time.time() + 7200) == 2
    assert store.get("a") is None and outbox.rejected_count() == 0


def test_history_days_are_dropped_whole(redis_client: redis.Redis) -> None:
    import numpy as np

    store = Store(redis_client)
    store.ensure_group()
    now = int(time.time() * 1000)
    for captured in (now - 5 * 86_400_000, now - 1000):
        face_id = ingest(store, captured)
        ((stream_id, _),) = read_ingest(redis_client, "w1", 1)
        store.record_result(stream_id, store.face(face_id), Outcome("unknown"), np.ones(512, np.float32) / 512**0.5,
                            "m1")
    def days() -> set[str]:  # fc:history:{model}:{day}:{camera or "cameras"}
        return {k.decode().split(":")[3] for k in redis_client.scan_iter(match=history_pattern("m1"))}

    assert len(days()) == 2
    done = Retention(redis_client, max_age_s=2 * 86400).run_once(now)
    assert done.history_days_dropped == 1 and done.faces_expired == 1
    assert days() == {time.strftime("%Y%m%d", time.gmtime(now / 1000))}


def _scans(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))


def test_history_days_come_from_their_index_not_a_keyspace_scan(redis_client: redis.Redis) -> None:
    """Days written before the index existed are found by one SCAN, the first round; later rounds scan
    nothing; a day is dropped for every model, its cameras set and index entry with it."""
    import numpy as np

    now = int(time.time() * 1000)
    old, today = now - 5 * 86_400_000, now - 1000
    vector = (np.ones(8, np.float32) / 8**0.5).tobytes()
    for model in ("m1", "m2"):  # as a version without the index left them: partitions and cameras sets only
        for camera in ("c1", "c2"):
            redis_client.execute_command("VADD", history_key(model, old, camera), "FP32", vector, f"{model}{camera}")
            redis_client.sadd(history_cameras_key(model, old), camera)
    store = Store(redis_client)
    store.ensure_group()
    face_id = ingest(store, today)
    ((stream_id, _),) = read_ingest(redis_client, "w1", 1)
    store.record_result(stream_id, store.face(face_id), Outcome("unknown"), np.ones(512, np.float32) / 512**0.5, "m1")
    assert redis_client.zrange(HISTORY_DAYS, 0, -1) == [history_days_member("m1", today).encode()]

    retention = Retention(redis_client, max_age_s=2 * 86400)
    before = _scans(redis_client)
    assert retention.run_once(now).history_days_dropped == 2  # m1 and m2 of the old day
    assert _scans(redis_client) > before
    assert not redis_client.exists(*(history_key(m, old, c) for m in ("m1", "m2") for c in ("c1", "c2")))
    assert not redis_client.exists(history_cameras_key("m1", old), history_cameras_key("m2", old))
    assert redis_client.zrange(HISTORY_DAYS, 0, -1) == [history_days_member("m1", today).encode()]
    assert redis_client.exists(history_key("m1", today, "cam-r"))

    # A late decision for a dropped day (an edge's old backlog) indexes the day again: the next round takes it.
    redis_client.execute_command("VADD", history_key("m1", old, "c3"), "FP32", vector, "late")
    redis_client.sadd(history_cameras_key("m1", old), "c3")
    redis_client.zadd(HISTORY_DAYS, {history_days_member("m1", old): old - old % 86_400_000})
    before = _scans(redis_client)
    assert retention.run_once(now).history_days_dropped == 1
    assert _scans(redis_client) == before  # found from the index alone
    assert not redis_client.exists(history_key("m1", old, "c3"), history_cameras_key("m1", old))
    assert Retention(redis_client, max_age_s=0.001).run_once(now + 86_400_000).history_days_dropped == 1
    assert redis_client.zcard(HISTORY_DAYS) == 0 and not redis_client.exists(history_key("m1", today, "cam-r"))


def test_a_decision_landing_while_its_day_is_dropped_is_not_left_unindexed(redis_client: redis.Redis) -> None:
    """The race retention guards against: a late decision for a day being dropped (an edge's old backlog)
    writes just after retention saw the day's cameras set empty and before it removed the day from the
    index. The day goes back into the index, so the late partition goes next round."""
    import numpy as np

    from cloud_analyzer.retention import HistoryDays

    now = int(time.time() * 1000)
    old = now - 5 * 86_400_000
    vector = (np.ones(8, np.float32) / 8**0.5).tobytes()
    member, day_start = history_days_member("m1", old), old - old % 86_400_000

    def decide(camera: str, face_id: str) -> None:  # what Store.record_result writes, in its order
        redis_client.execute_command("VADD", history_key("m1", old, camera), "FP32", vector, face_id)
        redis_client.sadd(history_cameras_key("m1", old), camera)
        redis_client.zadd(HISTORY_DAYS, {member: day_start})

    class LateDecision(HistoryDays):
        looks = 0

        def _cameras(self, days, models):  # type: ignore[no-untyped-def]
            seen = super()._cameras(days, models)
            self.looks += 1
            if self.looks == 2:  # the set was just seen empty: the day is about to leave the index
                decide("c-late", "late")
            return seen

    decide("c1", "f1")
    assert LateDecision(redis_client).drop_before(now) == 1
    assert redis_client.exists(history_key("m1", old, "c-late"))  # written after the deletions
    assert redis_client.zrange(HISTORY_DAYS, 0, -1) == [member.encode()]  # so the day is indexed again
    assert HistoryDays(redis_client).drop_before(now) == 1
    assert not redis_client.exists(history_key("m1", old, "c-late"), history_cameras_key("m1", old))
    assert redis_client.zcard(HISTORY_DAYS) == 0
