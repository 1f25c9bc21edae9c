"""Unknown people: anonymous clusters of unknown faces, in real Redis, through the real analyzer."""

from __future__ import annotations

import threading
import uuid

import httpx
import numpy as np
import pytest
from facecoding.v1 import ingest_pb2

from cloud_analyzer.clusters import ClusterBusy, Clusters
from cloud_analyzer.decision import OpenSetPolicy
from cloud_analyzer.gallery import Gallery
from cloud_analyzer.recognition import decode_base_layer
from cloud_analyzer.retention import Retention
from cloud_analyzer.store import Store
from cloud_analyzer.worker import RecognitionWorker
from facecodec.codec.profiles import codec_by_name
from facecodec.frontend import decode_image
from service_common.access import KeyStore, new_token
from service_common.redis_client import connect
from service_common.redis_keys import (
    CLUSTER_INDEXES,
    CLUSTER_OF_SHARDS,
    CLUSTER_SHARDS,
    cluster_key,
    cluster_moved_key,
    cluster_moves_key,
    cluster_shard,
    cluster_sizes_key,
    clusters_lock_key,
    face_key,
    unknown_vset_key,
)
from tests.helpers import lfw_image, wait_until
from tests.helpers.records import recent_ms, record
from tests.helpers.servers import denial_summaries
from tests.helpers.shards import read_ingest

Ack = ingest_pb2.IngestAck
TOKEN, READER = new_token(), new_token()
api = httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
reader = httpx.Client(headers={"Authorization": f"Bearer {READER}"}, timeout=60)
PEOPLE = {"Colin_Powell": (1, 2, 3, 4), "Tony_Blair": (1, 2, 3, 4)}
MODEL = codec_by_name("baseline").spec.descriptor_model


@pytest.fixture(scope="module")
def base_layers(front_end) -> dict[tuple[str, int], bytes]:
    return encode_photos(front_end)


def encode_photos(front_end) -> dict[tuple[str, int], bytes]:
    """Baseline base-only containers of a few LFW photos (the front end runs once per photo)."""
    codec = codec_by_name("baseline")
    out = {}
    for name, photos in {**PEOPLE, "Laura_Bush": (1, 2, 3)}.items():
        for n in photos:
            face = front_end.largest_face(decode_image(lfw_image(name, n).read_bytes()))
            out[(name, n)] = codec.encode_base(front_end.describe(face.crop)[0]).to_bytes()
    return out


def _ingest(store: Store, base_layer: bytes, camera: str, ts: int, face_id: str | None = None) -> dict:
    face_id = face_id or uuid.uuid4().hex
    store.ingest(face_id, {"base_layer": base_layer, "camera_id": camera, "captured_at_ms": ts, "edge_id": "e"})
    return store.face(face_id)


def _assign(clusters: Clusters, face: dict) -> str | None:
    descriptor, codec = decode_base_layer(face["base_layer"])
    return clusters.assign(face, descriptor, codec.spec.descriptor_model, codec.open_set_calibration)


def _cluster_count(r) -> int:
    return sum(r.zcard(key) for key in CLUSTER_INDEXES)


def _cluster_of(r) -> dict[str, str]:
    """Every shard's face_id -> cluster_id; a face in two shards fails."""
    found = [(k.decode(), v.decode()) for key in CLUSTER_OF_SHARDS for k, v in r.hgetall(key).items()]
    assert len(found) == len(dict(found)), found
    return dict(found)


def _consistent(r, clusters: Clusters) -> None:
    """Every cluster's size, sum and vector-set element agree with its members, each in its own shard; every
    member's face has that cluster in CLUSTER_OF and nothing else; no cross-shard merge left half done."""
    of = _cluster_of(r)
    members_of: dict[str, str] = {}
    for shard, index in enumerate(CLUSTER_INDEXES):
        for raw in r.zrange(index, 0, -1):
            cluster_id = raw.decode()
            assert cluster_shard(cluster_id) == shard
            members = [m.decode() for m in r.zrange(f"{cluster_key(cluster_id)}:members", 0, -1)]
            meta = r.hgetall(cluster_key(cluster_id))
            assert int(meta[b"size"]) == len(members) > 0 and b"moving_to" not in meta
            total = np.sum([Clusters._decode(r.hget(f"{cluster_key(cluster_id)}:faces", m)) for m in members], 0)
            np.testing.assert_allclose(np.frombuffer(meta[b"sum"], "<f8"), total, atol=1e-4)
            assert r.zscore(cluster_sizes_key(shard), cluster_id) == len(members)
            members_of.update({m: cluster_id for m in members})
        assert int(r.execute_command("VCARD", unknown_vset_key(MODEL, shard)) or 0) == r.zcard(index)
        assert not r.hlen(cluster_moves_key(shard)) and not r.hlen(cluster_moved_key(shard))
    assert of == members_of


def test_online_clusters_concurrent_replicas_retention(redis_client, base_layers) -> None:
    """Two replicas assigning at once keep sums and sizes consistent; one person's photos form one
    cluster, different people different ones; expired faces leave their clusters, empty ones vanish."""
    store = Store(redis_client)
    replicas = [Clusters(redis_client), Clusters(redis_client)]
    base = 1_000_000
    faces = [(_ingest(store, blob, f"cam{n % 2}", base + 1000 * i), name)
             for i, ((name, n), blob) in enumerate(base_layers.items())]
    errors: list[BaseException] = []

    def run(replica: Clusters, share: list) -> None:
        try:
            for face, _ in share:
                _assign(replica, face)
        except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(replicas[k], faces[k::2])) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _consistent(redis_client, replicas[0])
    by_person: dict[str, set[str]] = {}
    for face, name in faces:
        by_person.setdefault(name, set()).add(replicas[0].of(face["face_id"]))
        assert store.face(face["face_id"])["cluster_id"] == replicas[0].of(face["face_id"])
    assert all(len(ids) == 1 for ids in by_person.values()), by_person
    assert len(set.union(*by_person.values())) == 3
    laura = next(iter(by_person["Laura_Bush"]))
    cluster = replicas[1].get(laura)
    assert cluster.size == 3 and cluster.cameras == {"cam0": 1, "cam1": 2}
    assert set(cluster.representative_face_ids) == {f["face_id"] for f, n in faces if n == "Laura_Bush"}
    # Assigning again changes nothing.
    assert _assign(replicas[1], faces[0][0]) == replicas[0].of(faces[0][0]["face_id"])
    _consistent(redis_client, replicas[0])

    # Retention: everything captured before Laura's last photo expires.
    laura_last = max(int(f["captured_at_ms"]) for f, n in faces if n == "Laura_Bush")
    Retention(redis_client, max_age_s=1.0).run_once(now_ms=laura_last + 1000)
    assert _cluster_count(redis_client) == 1
    left = replicas[0].get(laura)
    assert left.size == 1 and left.first_seen_ms == left.last_seen_ms == laura_last and left.cameras == {"cam1": 1}
    _consistent(redis_client, replicas[0])
    Retention(redis_client, max_age_s=1.0).run_once(now_ms=laura_last + 2000)
    assert _cluster_count(redis_client) == 0 and replicas[0].get(laura) is None
    assert not any(redis_client.exists(unknown_vset_key(MODEL, s)) for s in range(CLUSTER_SHARDS))
    assert not _cluster_of(redis_client)


def test_erased_face_is_never_clustered_and_failures_do_not_fail_recognition(redis_client, base_layers) -> None:
    store = Store(redis_client)
    clusters = Clusters(redis_client)
    face = _ingest(store, base_layers[("Tony_Blair", 1)], "cam0", 5_000)
    redis_client.delete(face_key(face['face_id']))  # erased between the decision and clustering
    assert _assign(clusters, face) is None and _cluster_count(redis_client) == 0

    class Broken:
        def assign(self, *args):
            raise RuntimeError("clustering down")

    store.ensure_group()
    face = _ingest(store, base_layers[("Tony_Blair", 2)], "cam0", 6_000)
    worker = RecognitionWorker(store, Gallery(store), "t", OpenSetPolicy(0.01), clusters=Broken())
    for stream_id, fields in read_ingest(redis_client, "t", 10):
        worker.process(stream_id, fields[b"face_id"].decode())
    assert store.face(face["face_id"])["status"] == "unknown" and worker.processed == 1


def test_a_retried_erasure_still_takes_the_face_out_of_its_cluster(redis_client, base_layers) -> None:
    """A failure between deleting a face's record and removing it from its cluster must not leave its
    base layer in the cluster for good: the retry removes it, though the record is already gone."""
    from cloud_analyzer.erasure import Eraser

    store, clusters = Store(redis_client), Clusters(redis_client)
    faces = [_ingest(store, base_layers[("Colin_Powell", n)], "cam0", 1_000 * n) for n in (1, 2)]
    cluster_ids = {_assign(clusters, face) for face in faces}
    assert len(cluster_ids) == 1
    redis_client.delete(face_key(faces[0]['face_id']))  # the first step of an erasure, then a failure
    Eraser(redis_client).forget([faces[0]["face_id"]])  # the retry
    (cluster_id,) = cluster_ids
    members = [m.decode() for m in redis_client.zrange(f"{cluster_key(cluster_id)}:members", 0, -1)]
    assert members == [faces[1]["face_id"]]
    assert redis_client.hget(f"{cluster_key(cluster_id)}:faces", faces[0]["face_id"]) is None
    _consistent(redis_client, clusters)


# --- through the analyzer: gRPC ingest, workers, REST ------------------------------------------------
@pytest.fixture(autouse=True)
def keys(redis_server) -> None:

    store = KeyStore(connect(redis_server.url))
    store.register(TOKEN, "tests", ["admin"])
    store.register(READER, "viewer", ["sightings:read"])


def _decided(url: str, face_ids: list[str]) -> dict[str, dict]:
    def settled() -> dict[str, dict]:
        faces = {f: api.get(f"{url}/v1/faces/{f}").json() for f in face_ids}
        done = all(f["status"] != "pending" and (f["status"] != "unknown" or f["cluster_id"]) for f in faces.values())
        return faces if done else {}

    return wait_until(settled, 60, 0.2, "every face decided and clustered")


def test_unknown_people_rest_merge_split_promote_erase(analyzer, front_end, redis_server) -> None:
    url, stub = analyzer
    base = recent_ms(days=1)
    records = {(name, n): record(front_end, lfw_image(name, n), f"cam{n % 2}", base + 1000 * n + 100 * k)
               for k, (name, photos) in enumerate(PEOPLE.items()) for n in photos}
    acks = list(stub.Ingest(iter(records.values()), timeout=60))
    assert [a.status for a in acks] == [Ack.ACCEPTED] * len(records)
    faces = _decided(url, [r.face_id for r in records.values()])
    assert {f["status"] for f in faces.values()} == {"unknown"}  # nobody is enrolled
    ids = {name: {faces[r.face_id]["cluster_id"] for (n, _), r in records.items() if n == name} for name in PEOPLE}
    assert all(len(v) == 1 for v in ids.values()) and ids["Colin_Powell"] != ids["Tony_Blair"], ids
    colin, blair = (next(iter(ids[n])) for n in PEOPLE)
    colin_faces = [r.face_id for (n, _), r in records.items() if n == "Colin_Powell"]
    sightings = api.get(f"{url}/v1/sightings", params={"camera_id": "cam1"}).json()["items"]
    assert {s["cluster_id"] for s in sightings} == {colin, blair}

    page = reader.get(f"{url}/v1/clusters").json()
    assert page["next_cursor"] is None and [c["size"] for c in page["items"]] == [4, 4]
    one = reader.get(f"{url}/v1/clusters", params={"limit": 1}).json()
    two = reader.get(f"{url}/v1/clusters", params={"limit": 1, "cursor": one["next_cursor"]}).json()
    assert [c["cluster_id"] for c in one["items"] + two["items"]] == [c["cluster_id"] for c in page["items"]]
    assert two["next_cursor"] is None and one["items"][0]["first_seen_at"].endswith("Z")
    wrong_order = reader.get(f"{url}/v1/clusters", params={"order": "recent", "cursor": one["next_cursor"]})
    assert wrong_order.status_code == 422
    got = reader.get(f"{url}/v1/clusters/{colin}").json()
    first = records[("Colin_Powell", 1)].captured_at.ToMilliseconds()
    assert got["cameras"] == {"cam0": 2, "cam1": 2} and got["first_seen_ms"] == first
    assert set(got["face_ids"]) == set(colin_faces) and set(got["representative_face_ids"]) <= set(colin_faces)
    assert len(got["representative_face_ids"]) == 4
    recent = reader.get(f"{url}/v1/clusters", params={"order": "recent", "limit": 1}).json()
    assert recent["items"][0]["cluster_id"] == blair  # Blair's photos were captured last
    # Reading is not changing: a sightings:read key may not merge.
    assert reader.post(f"{url}/v1/clusters/{colin}/merge", json={"other": blair}).status_code == 403
    assert api.get(f"{url}/v1/clusters/unknown-000000000000").status_code == 404
    assert api.get(f"{url}/v1/clusters/not-a-cluster").status_code == 422

    # Split one face off, then merge it back.
    leaving = colin_faces[0]
    r = api.post(f"{url}/v1/clusters/{colin}/split", json={"face_id": leaving})
    assert r.status_code == 201, r.text
    alone = r.json()
    assert alone["size"] == 1 and alone["representative_face_ids"] == [leaving]
    assert api.get(f"{url}/v1/clusters/{colin}").json()["size"] == 3
    assert api.get(f"{url}/v1/faces/{leaving}").json()["cluster_id"] == alone["cluster_id"]
    assert api.post(f"{url}/v1/clusters/{colin}/split", json={"face_id": leaving}).status_code == 409
    r = api.post(f"{url}/v1/clusters/{colin}/merge", json={"other": alone["cluster_id"]})
    assert r.status_code == 200 and r.json()["size"] == 4, r.text
    assert api.get(f"{url}/v1/clusters/{alone['cluster_id']}").status_code == 404
    assert api.get(f"{url}/v1/faces/{leaving}").json()["cluster_id"] == colin
    assert api.post(f"{url}/v1/clusters/{colin}/merge", json={"other": colin}).status_code == 409

    # Promote: the cluster becomes an identity; its sightings are relabelled; the person is recognised.
    r = api.post(f"{url}/v1/clusters/{colin}/promote", json={"name": "Colin Powell"})
    assert r.status_code == 201, r.text
    identity = r.json()
    assert identity["name"] == "Colin Powell" and 1 <= identity["templates"] <= 4
    assert api.get(f"{url}/v1/clusters/{colin}").status_code == 404
    named = api.get(f"{url}/v1/sightings", params={"identity_id": identity["identity_id"]}).json()["items"]
    assert {s["face_id"] for s in named} == set(colin_faces)
    assert all(s["status"] == "recognised" and s["identity_name"] == "Colin Powell" and s["cluster_id"] is None
               for s in named)
    later = record(front_end, lfw_image("Colin_Powell", 5), "cam9", base + 60_000)
    assert [a.status for a in stub.Ingest(iter([later]), timeout=30)] == [Ack.ACCEPTED]
    decided = _decided(url, [later.face_id])[later.face_id]
    assert decided["status"] == "recognised" and decided["identity_id"] == identity["identity_id"], decided
    assert len(api.get(f"{url}/v1/clusters").json()["items"]) == 1

    # Erasure takes faces out of their cluster; the last one takes the cluster away.
    blair_faces = [r.face_id for (n, _), r in records.items() if n == "Tony_Blair"]
    assert api.delete(f"{url}/v1/faces/{blair_faces[0]}").status_code == 202
    left = api.get(f"{url}/v1/clusters/{blair}").json()
    assert left["size"] == 3 and blair_faces[0] not in left["face_ids"] + left["representative_face_ids"]
    for face_id in blair_faces[1:]:
        assert api.delete(f"{url}/v1/faces/{face_id}").status_code == 202
    assert api.get(f"{url}/v1/clusters/{blair}").status_code == 404
    assert api.get(f"{url}/v1/clusters").json()["items"] == []
    audit = api.get(f"{url}/v1/audit", params={"limit": 200}).json()["items"]
    actions = {(e["action"], e["outcome"]) for e in audit if e["action"].startswith("cluster.")}
    assert {("cluster.split", "ok"), ("cluster.merge", "ok"), ("cluster.promote", "ok")} <= actions
    # The reader's 403 is in its address's denial summary, written once its window has ended.
    denials = denial_summaries(redis_server.url)
    assert any(e.status == 403 and "POST /v1/clusters/{cluster_id}/merge" in e.detail for e in denials)


def test_the_model_lock_excludes_other_replicas_and_expires(redis_client) -> None:
    """One replica at a time changes a model's clusters; a lock left by a dead replica frees itself."""
    holder = Clusters(redis_client, lock_ttl_s=60, lock_wait_s=0.05)
    waiter = Clusters(redis_client, lock_ttl_s=60, lock_wait_s=0.05)
    with holder._lock("m-lock"), pytest.raises(ClusterBusy):
        with waiter._lock("m-lock"):
            pass
    dying = Clusters(redis_client, lock_ttl_s=0.3, lock_wait_s=0.05)
    with dying._lock("m-lock"):
        # The holder outlives its lock (Redis expires it): another replica may go on.
        wait_until(lambda: not redis_client.exists(clusters_lock_key("m-lock")), 10, 0.05, "the lock expired")
        with waiter._lock("m-lock"):
            assert redis_client.exists(clusters_lock_key("m-lock"))
    assert not redis_client.exists(clusters_lock_key("m-lock"))


def test_joins_take_no_lock_but_wait_for_an_operators_change(redis_client, base_layers) -> None:
    """A face joins its cluster without the model's lock; while an operator's change holds the lock, a join
    waits for it (and gives up with ClusterBusy, as a locked assignment did), never writing beside it."""
    store = Store(redis_client)
    clusters = Clusters(redis_client, lock_wait_s=0.05)
    faces = []
    for n in (1, 2):  # stored, not queued: no analyzer worker of another test may cluster them meanwhile
        face_id = uuid.uuid4().hex
        redis_client.hset(face_key(face_id), mapping={"face_id": face_id, "camera_id": "cam0",
                                                      "captured_at_ms": 1_000 * n,
                                                      "base_layer": base_layers[("Colin_Powell", n)]})
        faces.append(store.face(face_id))
    first = _assign(clusters, faces[0])
    assert clusters.stats["joined_unlocked"] == 1 and not clusters.stats["joined_locked"]
    operator = Clusters(redis_client, lock_ttl_s=60)
    with operator._lock(MODEL), pytest.raises(ClusterBusy):
        _assign(clusters, faces[1])
    assert clusters.stats["joined_locked"] == 1 and clusters.of(faces[1]["face_id"]) is None
    assert _assign(clusters, faces[1]) == first  # the lock gone: joins again, unlocked
    assert clusters.stats["joined_unlocked"] == 2, clusters.stats
    _consistent(redis_client, clusters)
