"""Erasure finds the whole person: an identity erase also takes the person's unnamed faces (seen before
they were enrolled, or too poor to be named) and unknown-face clusters, found by biometric search at the
analyzer's decision threshold, and can be previewed first; a camera erase takes faces in every state,
pending in the ingest stream included, and no worker brings them back. Real Redis, real analyzer."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from facecoding.v1 import ingest_pb2

from cloud_analyzer.clusters import Clusters
from cloud_analyzer.decision import OpenSetPolicy
from cloud_analyzer.gallery import Gallery
from cloud_analyzer.store import Store
from cloud_analyzer.worker import RecognitionWorker
from service_common.redis_client import connect
from service_common.redis_keys import GROUP, face_key, ingest_stream_of
from tests.helpers import lfw_image, shards, wait_until
from tests.helpers.records import recent_ms, record
from tests.helpers.servers import api_client, serve_analyzer

Ack = ingest_pb2.IngestAck
PERSON, OTHER = "Gray_Davis", "Serena_Williams"


def _decided(api: httpx.Client, url: str, face_ids: list[str]) -> bool:
    return all(api.get(f"{url}/v1/faces/{f}").json().get("status") not in (None, "pending") for f in face_ids)


def _exists(api: httpx.Client, url: str, face_id: str) -> bool:
    return api.get(f"{url}/v1/faces/{face_id}").status_code == 200


def test_identity_erase_finds_the_persons_unnamed_faces_and_clusters(redis_server, front_end) -> None:
    with serve_analyzer(redis_server.url) as (url, stub):
        api = api_client(redis_server.url)
        base = recent_ms(days=2)
        # Seen before enrolment: three unknown sightings on two cameras, and one too blurred to be named.
        earlier = [record(front_end, lfw_image(PERSON, i + 1), cam, base + 60_000 * i)
                   for i, cam in enumerate(("door", "hall", "door"))]
        earlier.append(record(front_end, lfw_image(PERSON, 7), "hall", base + 200_000, issues=("blurred",)))
        others = [record(front_end, lfw_image(OTHER, i + 1), "door", base + 30_000 + 60_000 * i) for i in range(2)]
        assert {a.status for a in stub.Ingest(iter([*earlier, *others]), timeout=60)} == {Ack.ACCEPTED}
        mine, theirs = [r.face_id for r in earlier], [r.face_id for r in others]
        wait_until(lambda: _decided(api, url, mine + theirs), 60, 0.2, "every face decided")
        statuses = {api.get(f"{url}/v1/faces/{f}").json()["status"] for f in mine}
        assert statuses == {"unknown", "low_quality"}, statuses
        their_clusters = {api.get(f"{url}/v1/faces/{f}").json()["cluster_id"] for f in theirs} - {None}
        assert their_clusters, "the other person's faces are clustered"

        files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in (lfw_image(PERSON, 5),
                                                                             lfw_image(PERSON, 6))]
        identity = api.post(f"{url}/v1/identities", data={"name": PERSON}, files=files).json()["identity_id"]

        preview = api.get(f"{url}/v1/identities/{identity}/erasure-preview")
        assert preview.status_code == 200, preview.text
        shown = preview.json()
        matched = {m["face_id"]: m for m in shown["matched_faces"]}
        assert all(m["captured_at"].endswith("Z") and m["captured_at_ms"] > 0 for m in matched.values())
        assert shown["named_faces"] == [] and set(mine) <= set(matched), shown
        assert not set(theirs) & (set(matched) | set(shown["cluster_faces"])), "the threshold is not vacuous"
        assert all(m["similarity"] >= shown["match_threshold"] > 0.2 for m in matched.values())
        assert shown["edges"] == {"edge-t": len(set(matched) | set(shown["cluster_faces"]))}
        their_scores = [h["similarity"] for h in api.post(f"{url}/v1/search/history", data={
            "identity_id": identity, "min_similarity": -1}).json()["items"] if h["face_id"] in theirs]
        assert their_scores and max(their_scores) < shown["match_threshold"]
        # A preview changes nothing, and is audited.
        assert all(_exists(api, url, f) for f in mine + theirs)
        assert api.get(f"{url}/v1/identities/{identity}").status_code == 200
        audited = api.get(f"{url}/v1/audit", params={"action": "identity.erase_preview"}).json()["items"]
        assert len(audited) == 1 and audited[0]["identity_id"] == identity

        erased = api.post(f"{url}/v1/identities/{identity}/erase", json={})
        assert erased.status_code == 202, erased.text
        report = erased.json()
        assert report["matched_faces"] == len(set(matched) | set(shown["cluster_faces"])) >= len(mine)
        assert report["clusters"] == len(shown["clusters"]) and report["match_threshold"] == shown["match_threshold"]
        assert api.get(f"{url}/v1/erasures/{report['erasure_id']}").json()["matched_faces"] == report["matched_faces"]

        assert not any(_exists(api, url, f) for f in mine)
        assert all(_exists(api, url, f) for f in theirs)  # another person's unknown faces stay
        for cluster in shown["clusters"]:
            assert api.get(f"{url}/v1/clusters/{cluster['cluster_id']}").status_code == 404
        assert all(api.get(f"{url}/v1/clusters/{c}").status_code == 200 for c in their_clusters)
        photo = lfw_image(PERSON, 4).read_bytes()
        found = api.post(f"{url}/v1/search/history", files={"image": ("p.jpg", photo)},
                         data={"min_similarity": -1, "limit": 500}).json()["items"]
        assert not {h["face_id"] for h in found} & set(mine)


def _worker(store: Store, consumer: str) -> RecognitionWorker:
    return RecognitionWorker(store, Gallery(store), consumer, OpenSetPolicy(0.01), claim_idle_s=0.1,
                             clusters=Clusters(store.r))


def test_camera_erase_takes_pending_and_failed_faces_and_no_worker_brings_them_back(redis_server,
                                                                                      front_end) -> None:
    with serve_analyzer(redis_server.url, workers=0) as (url, stub):  # nothing decides faces on its own
        api, client = api_client(redis_server.url), connect(redis_server.url)
        store = Store(client)
        ts = recent_ms(days=1)
        # A face a worker could not decode (stored with a broken base layer): decided `error`, no sighting.
        failed = "f" * 32
        store.ingest(failed, {"base_layer": b"not a base layer", "camera_id": "gate", "captured_at_ms": ts,
                              "edge_id": "edge-t"})
        early = _worker(store, "early")
        early.start()
        wait_until(lambda: client.hget(face_key(failed), "status") == b"error", 30, 0.1, "the failed decision")
        early.stop()
        # Two faces still in the ingest stream: one a worker has taken (delivered, not yet decided), one not.
        taken, waiting = (record(front_end, lfw_image(OTHER, i + 1), "gate", ts + 1000 * (i + 1)) for i in range(2))
        other_camera = record(front_end, lfw_image(OTHER, 3), "lobby", ts + 1500)
        assert [a.status for a in stub.Ingest(iter([taken]), timeout=30)] == [Ack.ACCEPTED]
        assert client.xreadgroup(GROUP, "late", {ingest_stream_of(taken.face_id): ">"}, count=1)  # as a worker
        assert {a.status for a in stub.Ingest(iter([waiting, other_camera]), timeout=30)} == {Ack.ACCEPTED}
        assert {client.hget(face_key(r.face_id), "status") for r in (taken, waiting)} == {b"pending"}

        iso = [datetime.fromtimestamp(t / 1000, UTC).isoformat() for t in (ts - 1, ts + 5000)]
        erased = api.post(f"{url}/v1/cameras/gate/erase", json={"since": iso[0], "until": iso[1]})
        assert erased.status_code == 202 and erased.json()["faces"] == 3, erased.text
        doomed = [failed, taken.face_id, waiting.face_id]
        assert not any(client.exists(face_key(f)) for f in doomed)

        late = _worker(store, "late")  # the consumer that holds the taken entry
        late.start()
        try:
            wait_until(lambda: client.hget(face_key(other_camera.face_id), "status") not in (None, b"pending"),
                       30, 0.1, "the other camera's face decided")
            wait_until(lambda: shards.pending(client) == 0, 30, 0.1, "every entry acked")
        finally:
            late.stop()
        assert not any(client.exists(face_key(f)) for f in doomed)
        assert not shards.sighted(client, taken.face_id) and not shards.sighted(client, waiting.face_id)
        assert api.get(f"{url}/v1/sightings", params={"camera_id": "gate"}).json()["items"] == []


def test_identity_erase_takes_the_persons_faces_still_pending_in_the_ingest_stream(redis_server,
                                                                                     front_end) -> None:
    with serve_analyzer(redis_server.url, workers=0) as (url, stub):  # nothing decides faces on its own
        api, client = api_client(redis_server.url), connect(redis_server.url)
        files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in (lfw_image(PERSON, 5),
                                                                             lfw_image(PERSON, 6))]
        identity = api.post(f"{url}/v1/identities", data={"name": PERSON}, files=files).json()["identity_id"]
        ts = recent_ms(days=1)
        # The person's two faces in the stream: one a worker has taken (delivered, not yet decided), one
        # not yet delivered; and another person's face, not yet delivered.
        taken, waiting = (record(front_end, lfw_image(PERSON, i + 1), "gate", ts + 1000 * i) for i in range(2))
        theirs = record(front_end, lfw_image(OTHER, 1), "gate", ts + 3000)
        assert [a.status for a in stub.Ingest(iter([taken]), timeout=30)] == [Ack.ACCEPTED]
        assert client.xreadgroup(GROUP, "late", {ingest_stream_of(taken.face_id): ">"}, count=1)  # as a worker
        assert {a.status for a in stub.Ingest(iter([waiting, theirs]), timeout=30)} == {Ack.ACCEPTED}
        mine = {taken.face_id, waiting.face_id}
        assert {client.hget(face_key(f), "status") for f in (*mine, theirs.face_id)} == {b"pending"}

        shown = api.get(f"{url}/v1/identities/{identity}/erasure-preview").json()
        matched = {m["face_id"]: m for m in shown["matched_faces"]}
        assert set(matched) == mine and shown["pending_faces"] == 2, shown
        assert all(m["status"] == "pending" and m["similarity"] >= shown["match_threshold"] for m in matched.values())
        assert shown["edges"] == {"edge-t": 2}
        assert all(client.exists(face_key(f)) for f in mine)  # the preview changes nothing

        report = api.post(f"{url}/v1/identities/{identity}/erase", json={}).json()
        assert report["matched_faces"] == report["pending_faces"] == 2 and report["faces"] == 2, report
        assert not any(client.exists(face_key(f)) for f in mine)
        assert client.exists(face_key(theirs.face_id))

        store = Store(client)
        late = _worker(store, "late")  # the consumer that holds the taken entry
        late.start()
        try:
            wait_until(lambda: client.hget(face_key(theirs.face_id), "status") == b"unknown", 30, 0.1,
                       "the other person's face decided")
            wait_until(lambda: shards.pending(client) == 0, 30, 0.1, "every entry acked")
        finally:
            late.stop()
        assert store.face(theirs.face_id) is not None
        assert not any(client.exists(face_key(f)) or shards.sighted(client, f) for f in mine)
        assert [s["face_id"] for s in api.get(f"{url}/v1/sightings", params={"camera_id": "gate"}).json()["items"]] \
            == [theirs.face_id]
