"""Cluster-state shards (FACECODEC_CLUSTER_SHARDS): merges across shards, a merge a replica died in the middle
of, erasure racing a merge, listings over shards, and the shards spread over a Redis Cluster's primaries.

The cross-shard tests need more than one shard (`make test-cluster` runs this module with 3); with one they
are skipped, the listings and joins of one shard being test_clusters.py's.
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from cloud_analyzer import cluster_moves
from cloud_analyzer.clusters import Clusters, _Member, new_cluster_id
from cloud_analyzer.erasure import Eraser
from cloud_analyzer.recognition import decode_base_layer
from cloud_analyzer.store import Store
from facecodec.openset import unit
from service_common.redis_client import is_cluster
from service_common.redis_keys import (
    CLUSTER_INDEXES,
    CLUSTER_OF_SHARDS,
    CLUSTER_SHARDS,
    cluster_key,
    cluster_moves_key,
    cluster_part_key,
    cluster_shard,
    clusters_key,
    face_key,
)
from tests.test_clusters import MODEL, _cluster_of, _consistent, _ingest, encode_photos


@pytest.fixture(scope="module")
def base_layers(front_end) -> dict[tuple[str, int], bytes]:
    return encode_photos(front_end)


sharded = pytest.mark.skipif(CLUSTER_SHARDS < 2, reason="one cluster shard (FACECODEC_CLUSTER_SHARDS=1)")


def _member(face: dict) -> _Member:
    descriptor, _ = decode_base_layer(face["base_layer"])
    return _Member(face["face_id"], int(face["captured_at_ms"]), face["camera_id"], face["base_layer"],
                   unit(np.asarray(descriptor, np.float32)))


def _cluster(clusters: Clusters, store: Store, shard: int, photos: list[tuple[bytes, str, int]]) -> tuple[str, list]:
    """A cluster in `shard` of faces (base layer, camera, capture time) stored first; (its id, the faces)."""
    cluster_id = new_cluster_id(shard)
    faces = [_ingest(store, base_layer, camera, ts) for base_layer, camera, ts in photos]
    for face in faces:
        assert clusters._add(cluster_id, MODEL, _member(face))
    return cluster_id, faces


def _two_shards(clusters: Clusters, store: Store, base_layers) -> tuple[str, list, str, list]:
    """Cluster `a` (shard 0: three faces) and `b` (shard 1: two faces, another camera)."""
    a, a_faces = _cluster(clusters, store, 0, [(base_layers[("Colin_Powell", n)], "cam0", 1_000 * n)
                                               for n in (1, 2, 3)])
    b, b_faces = _cluster(clusters, store, 1, [(base_layers[("Colin_Powell", 4)], "cam1", 500),
                                               (base_layers[("Tony_Blair", 1)], "cam1", 9_000)])
    assert cluster_shard(a) != cluster_shard(b)
    return a, a_faces, b, b_faces


def _nowhere(r, face_id: str) -> None:
    """No shard's CLUSTER_OF, and no cluster's members or faces, names the face."""
    assert not any(r.hexists(key, face_id) for key in CLUSTER_OF_SHARDS)
    for index in CLUSTER_INDEXES:
        for raw in r.zrange(index, 0, -1):
            assert r.zscore(cluster_part_key(raw.decode(), "members"), face_id) is None
            assert not r.hexists(cluster_part_key(raw.decode(), "faces"), face_id)


@sharded
def test_a_merge_across_shards_moves_every_face_once(redis_client, base_layers) -> None:
    store, clusters = Store(redis_client), Clusters(redis_client)
    a, a_faces, b, b_faces = _two_shards(clusters, store, base_layers)
    sums = {c: np.frombuffer(redis_client.hget(cluster_key(c), "sum"), "<f8").copy() for c in (a, b)}
    merged = clusters.merge(a, b)
    assert merged.size == 5 and merged.cameras == {"cam0": 3, "cam1": 2}
    assert (merged.first_seen_ms, merged.last_seen_ms) == (500, 9_000)
    assert clusters.get(b) is None and not redis_client.exists(cluster_part_key(b, "faces"))
    np.testing.assert_allclose(np.frombuffer(redis_client.hget(cluster_key(a), "sum"), "<f8"), sums[a] + sums[b],
                               atol=1e-9)
    for face in a_faces + b_faces:
        assert clusters.of(face["face_id"]) == a and store.face(face["face_id"])["cluster_id"] == a
    assert _cluster_of(redis_client) == {f["face_id"]: a for f in a_faces + b_faces}
    _consistent(redis_client, clusters)


@sharded
def test_a_merge_cut_after_its_first_step_is_finished_once_by_a_restart(redis_client, base_layers) -> None:
    store, clusters = Store(redis_client), Clusters(redis_client)
    a, a_faces, b, b_faces = _two_shards(clusters, store, base_layers)
    with clusters._lock(MODEL, {cluster_shard(a), cluster_shard(b)}):
        cluster_moves.move(clusters, a, b, MODEL, stop_after=1)  # the replica dies after step 1
        cluster_moves.finish(clusters, b, a, MODEL, stop_after=1)  # and so does the next one: step 1 not redone
    # Half done: b's faces are in both shards, b is marked and journaled; lookups and joins go to a.
    assert int(redis_client.hget(cluster_key(a), "size")) == 5 and int(redis_client.hget(cluster_key(b), "size")) == 2
    assert redis_client.hget(cluster_key(b), "moving_to") == a.encode()
    assert redis_client.hget(cluster_moves_key(cluster_shard(b)), b) == a.encode()
    assert all(clusters.of(f["face_id"]) == a for f in b_faces)
    late = _ingest(store, base_layers[("Colin_Powell", 4)], "cam2", 10_000)  # b's own photo: b is never chosen
    assert clusters.assign(late, _member(late).descriptor, MODEL, _calibration()) == a
    # The restart.
    assert cluster_moves.finish_moves(Clusters(redis_client)) == 1
    assert cluster_moves.finish_moves(Clusters(redis_client)) == 0
    assert clusters.get(a).size == 6 and clusters.get(b) is None
    assert _cluster_of(redis_client) == {f["face_id"]: a for f in a_faces + b_faces + [late]}
    _consistent(redis_client, clusters)


@pytest.mark.skipif(CLUSTER_SHARDS < 3, reason="three cluster shards or more")
def test_two_cut_merges_into_each_other_leave_every_face_once(redis_client, base_layers) -> None:
    """b was being moved into a, and a into c, both cut after their first mark: whichever a restart finishes
    first, nothing is lost or counted twice (a move into a cluster that is itself moving is abandoned)."""
    store, clusters = Store(redis_client), Clusters(redis_client)
    a, a_faces, b, b_faces = _two_shards(clusters, store, base_layers)
    c, c_faces = _cluster(clusters, store, 2, [(base_layers[("Laura_Bush", n)], "cam2", 20_000 + n) for n in (1, 2)])
    with clusters._lock(MODEL):
        cluster_moves.move(clusters, a, b, MODEL, stop_after=0)
        cluster_moves.move(clusters, c, a, MODEL, stop_after=0)
    assert cluster_moves.finish_moves(Clusters(redis_client)) >= 1
    every = {f["face_id"] for f in a_faces + b_faces + c_faces}
    assert set(_cluster_of(redis_client)) == every
    assert clusters.get(a) is None  # moved into c; b, whose target was moving, stays (or went into c after it)
    assert sum(clusters.get(x).size for x in (b, c) if clusters.get(x)) == 7
    _consistent(redis_client, clusters)


def _calibration():
    from facecodec.codec.profiles import codec_by_name

    return codec_by_name("baseline").open_set_calibration


@sharded
def test_an_erasure_during_a_cut_merge_takes_the_face_out_of_both_shards(redis_client, base_layers) -> None:
    store, clusters = Store(redis_client), Clusters(redis_client)
    a, a_faces, b, b_faces = _two_shards(clusters, store, base_layers)
    with clusters._lock(MODEL, {cluster_shard(a), cluster_shard(b)}):
        cluster_moves.move(clusters, a, b, MODEL, stop_after=1)
    erased = b_faces[0]["face_id"]
    Eraser(redis_client).forget([erased])  # while the move is half done: in a and in b
    _nowhere(redis_client, erased)
    assert cluster_moves.finish_moves(clusters) == 1
    _nowhere(redis_client, erased)
    assert clusters.get(a).size == 4
    _consistent(redis_client, clusters)


@sharded
def test_a_face_erased_before_the_copy_is_left_behind(redis_client, base_layers) -> None:
    """The erasure deleted the record and bumped the counters, then waits for the merge's locks: the merge
    copies what still exists, the erasure then finds nothing left anywhere."""
    store, clusters = Store(redis_client), Clusters(redis_client)
    a, a_faces, b, b_faces = _two_shards(clusters, store, base_layers)
    erased = b_faces[1]["face_id"]
    redis_client.delete(face_key(erased))
    clusters.merge(a, b)
    assert clusters.get(a).size == 4 and redis_client.zscore(cluster_part_key(a, "members"), erased) is None
    clusters.remove_faces([erased])
    _nowhere(redis_client, erased)
    _consistent(redis_client, clusters)


@sharded
def test_erasures_racing_cross_shard_merges_never_leave_a_face(redis_client, base_layers) -> None:
    store, eraser = Store(redis_client), Eraser(redis_client)
    clusters = Clusters(redis_client)
    photos = [base_layers[("Colin_Powell", n)] for n in (1, 2, 3, 4)] + [base_layers[("Tony_Blair", n)]
                                                                          for n in (1, 2, 3, 4)]
    for round_ in range(6):
        keep, _ = _cluster(clusters, store, 0, [(p, "cam0", 1_000 + n) for n, p in enumerate(photos[:4])])
        gone, faces = _cluster(clusters, store, 1 + round_ % (CLUSTER_SHARDS - 1),
                               [(p, "cam1", 2_000 + n) for n, p in enumerate(photos[4:])])
        doomed = [f["face_id"] for f in faces[round_ % 2 :: 2]]
        errors: list[BaseException] = []
        thread = threading.Thread(target=_erase, args=(eraser, doomed, errors))
        thread.start()
        Clusters(redis_client).merge(keep, gone)
        thread.join()
        assert not errors
        for face_id in doomed:
            _nowhere(redis_client, face_id)
        assert clusters.get(keep).size == 8 - len(doomed)
        _consistent(redis_client, clusters)


def _erase(eraser: Eraser, face_ids: list[str], errors: list[BaseException]) -> None:
    try:
        eraser.forget(face_ids)
    except BaseException as exc:  # noqa: BLE001 (reported by the test)
        errors.append(exc)


def test_listings_over_shards_page_in_one_order(redis_client, base_layers) -> None:
    """Clusters by size and by last seen, over every shard, in pages whose cursors are the positions."""
    store, clusters = Store(redis_client), Clusters(redis_client)
    people = [("Colin_Powell", 1), ("Colin_Powell", 2), ("Tony_Blair", 1), ("Tony_Blair", 2), ("Laura_Bush", 1),
              ("Laura_Bush", 2), ("Colin_Powell", 3)]
    made = []
    for n, person in enumerate(people):
        sizes = 1 + n % 3  # ties across shards too
        cluster_id, _ = _cluster(clusters, store, n % CLUSTER_SHARDS,
                                 [(base_layers[person], "cam0", 10_000 * n + k + (n % 2) * 7) for k in range(sizes)])
        made.append(cluster_id)
    for order, key in (("size", lambda c: (c.size, c.cluster_id)),
                       ("recent", lambda c: (c.last_seen_ms, c.cluster_id))):
        whole = sorted((clusters.get(c) for c in made), key=key, reverse=True)
        pages, after = [], None
        while True:
            page, after = clusters.list(order, after, 2)
            pages += page
            if after is None:
                break
            assert after == key(page[-1])
        assert [c.cluster_id for c in pages] == [c.cluster_id for c in whole], order
    if CLUSTER_SHARDS > 1:
        assert len({cluster_shard(c) for c in made}) == CLUSTER_SHARDS


@pytest.mark.skipif(CLUSTER_SHARDS != 3, reason="three cluster shards on three primaries")
def test_three_cluster_shards_spread_over_three_primaries(redis_client) -> None:
    if not is_cluster(redis_client):
        pytest.skip("a Redis Cluster (FC_TEST_REDIS=cluster)")
    primaries = {n.name for n in redis_client.get_primaries()}
    assert len(primaries) == 3
    shard_nodes = {redis_client.get_node_from_key(clusters_key(s)).name for s in range(CLUSTER_SHARDS)}
    assert shard_nodes == primaries
    # New clusters' random ids spread over the shards, and so over the nodes.
    ids = [new_cluster_id() for _ in range(300)]
    per_node = {name: 0 for name in primaries}
    for cluster_id in ids:
        per_node[redis_client.get_node_from_key(cluster_key(cluster_id)).name] += 1
    assert min(per_node.values()) > 60, per_node
    # Written ones too: the hash of each cluster is on its shard's node (one slot with its indexes).
    clusters, rng = Clusters(redis_client), np.random.default_rng(1)
    for n in range(12):
        vector = unit(rng.standard_normal(512).astype(np.float32))
        face_id = uuid.uuid4().hex
        redis_client.hset(face_key(face_id), "face_id", face_id)
        assert clusters._add(new_cluster_id(n % 3), MODEL, _Member(face_id, n, "cam0", b"", vector))
    used = {redis_client.get_node_from_key(key).name for key in CLUSTER_INDEXES if redis_client.zcard(key)}
    assert used == primaries
