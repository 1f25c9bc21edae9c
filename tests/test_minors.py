"""Children in a real analyzer (gRPC Ingest, workers, REST, Redis): a face the child-look probe flags
carries the flag in its sighting and search answer; ANALYZER_CHILD_POLICY withholds its name, or names
it only at the child threshold; enrolling it is refused or warned about. Child photos: FairFace val
(tests/data/fairface, CC BY 4.0); adults: LFW."""

from __future__ import annotations

from pathlib import Path

from facecoding.v1 import ingest_pb2

from cloud_analyzer.store import Store
from facecodec.frontend import decode_image
from facecodec.frontend.describe import DESCRIPTOR_MODEL
from service_common.redis_client import connect
from tests.helpers import lfw_image, wait_until
from tests.helpers.records import recent_ms, record
from tests.helpers.servers import api_client, serve_analyzer

Ack = ingest_pb2.IngestAck
CHILD = Path(__file__).resolve().parent / "data" / "fairface" / "val_2202.jpg"  # a child of 3-9
ADULT = "Tony_Blair"


def _upload(path: Path, name: str = "p.jpg") -> tuple[str, tuple[str, bytes, str]]:
    return ("images", (name, path.read_bytes(), "image/jpeg"))


def _sighting(url: str, stub, api, front_end, path: Path, camera: str) -> dict:
    rec = record(front_end, path, camera, recent_ms(days=1))
    assert [a.status for a in stub.Ingest(iter([rec]), timeout=30)] == [Ack.ACCEPTED]
    return wait_until(lambda: (f := api.get(f"{url}/v1/faces/{rec.face_id}").json())["status"] != "pending" and f,
                      30, 0.1, f"face {rec.face_id} decided")


def _search(url: str, api, path: Path) -> dict:
    r = api.post(f"{url}/v1/search", files={"image": ("p.jpg", path.read_bytes())})
    assert r.status_code == 200, r.text
    return r.json()


def test_withhold_flags_children_refuses_their_enrolment_and_names_nobody(redis_server, front_end) -> None:
    with serve_analyzer(redis_server.url, fusion_window_s=0) as (url, stub):  # the default policy: withhold
        api = api_client(redis_server.url)
        adult = api.post(f"{url}/v1/identities", data={"name": ADULT},
                         files=[_upload(lfw_image(ADULT, n), f"{n}.jpg") for n in (1, 2)])
        assert adult.status_code == 201 and adult.json()["child_flags"] == [], adult.text
        refused = api.post(f"{url}/v1/identities", data={"name": "kid"}, files=[_upload(CHILD)])
        assert refused.status_code == 422 and "child" in refused.json()["detail"], refused.text

        # An adult is named as before, and says it was assessed.
        named = _search(url, api, lfw_image(ADULT, 3))
        assert named["candidates"][0]["match"] and named["looks_child"] is False
        assert 0 <= named["child_probability"] < 0.5 and not named["child_withheld"]
        seen = _sighting(url, stub, api, front_end, lfw_image(ADULT, 4), "door")
        assert seen["status"] == "recognised" and seen["looks_child"] is False and not seen["child_withheld"]

        # A child enrolled before the policy (straight into the store): its own photo would clear the
        # adult threshold, but its name is withheld, in search and sightings alike.
        face = front_end.largest_face(decode_image(CHILD.read_bytes()))
        Store(connect(redis_server.url)).add_identity(
            "c" * 32, "kid", front_end.describe(face.crop), DESCRIPTOR_MODEL)
        child = _search(url, api, CHILD)
        best = child["candidates"][0]
        assert best["identity_id"] == "c" * 32 and best["similarity"] >= child["threshold"], child
        assert not best["match"] and child["looks_child"] and child["child_withheld"]
        assert child["faces"][0]["looks_child"] and child["child_probability"] >= 0.5
        sighting = _sighting(url, stub, api, front_end, CHILD, "hall")
        assert sighting["status"] == "unknown" and sighting["identity_id"] is None, sighting
        assert sighting["looks_child"] and sighting["child_withheld"] and sighting["child_probability"] >= 0.5
        listed = api.get(f"{url}/v1/sightings", params={"camera_id": "hall"}).json()["items"]
        assert [s["child_withheld"] for s in listed] == [True]
        # Adding that sighting to the identity is an enrolment too: refused, and nothing changes.
        refused = api.post(f"{url}/v1/sightings/{sighting['face_id']}/correction",
                           json={"action": "reassign", "identity_id": "c" * 32, "add_as_template": True})
        assert refused.status_code == 422 and "child" in refused.json()["detail"], refused.text
        assert api.get(f"{url}/v1/faces/{sighting['face_id']}").json()["status"] == "unknown"
        # So is promoting the unknown child's cluster to an identity.
        cluster = sighting["cluster_id"]
        assert cluster
        promoted = api.post(f"{url}/v1/clusters/{cluster}/promote", json={"name": "kid 2"})
        assert promoted.status_code == 422 and "child" in promoted.json()["detail"], promoted.text
        assert api.get(f"{url}/v1/clusters/{cluster}").status_code == 200


def test_strict_warns_on_enrolment_and_names_a_child_only_at_the_child_threshold(redis_server, front_end) -> None:
    with serve_analyzer(redis_server.url, fusion_window_s=0, child_policy="strict",
                        child_threshold=0.999) as (url, stub):
        api = api_client(redis_server.url)
        enrolled = api.post(f"{url}/v1/identities", data={"name": "kid"}, files=[_upload(CHILD)])
        assert enrolled.status_code == 201, enrolled.text
        assert [f["index"] for f in enrolled.json()["child_flags"]] == [0]
        child = _search(url, api, CHILD)  # its own photo as a probe: far above the adult threshold, below 0.999
        assert child["looks_child"] and child["child_withheld"] and not child["candidates"][0]["match"]
        assert child["threshold"] == 0.999
    with serve_analyzer(redis_server.url, fusion_window_s=0, child_policy="strict") as (url, stub):
        api = api_client(redis_server.url)
        assert api.post(f"{url}/v1/identities", data={"name": "kid"}, files=[_upload(CHILD)]).status_code == 201
        child = _search(url, api, CHILD)  # at the default child threshold its own photo is named
        assert child["looks_child"] and not child["child_withheld"] and child["candidates"][0]["match"]
        assert child["threshold"] >= 0.58


def test_off_decides_children_like_adults(redis_server, front_end) -> None:
    with serve_analyzer(redis_server.url, fusion_window_s=0, child_policy="off") as (url, stub):
        api = api_client(redis_server.url)
        enrolled = api.post(f"{url}/v1/identities", data={"name": "kid"}, files=[_upload(CHILD)])
        assert enrolled.status_code == 201 and enrolled.json()["child_flags"] == []
        child = _search(url, api, CHILD)
        assert child["candidates"][0]["match"] and child["looks_child"] is None and not child["child_withheld"]
        sighting = _sighting(url, stub, api, front_end, CHILD, "door")
        assert sighting["status"] == "recognised" and sighting["looks_child"] is None
