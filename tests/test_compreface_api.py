"""The CompreFace-compatible API on a real analyzer (real Redis, real models, HTTP over loopback, LFW
photos), called the way CompreFace's clients call it:

- with exadel-inc's Python SDK itself (compreface-sdk 0.6.0 from PyPI, installed without its pin of
  requests-toolbelt 0.9.1, which needs urllib3 < 2: nodeps.txt), and request for request as it sends
  them (`requests` with `x-api-key`, multipart `file` / `source_image` / `target_image`, JSON subject
  bodies, options in the query), which also reaches the calls the SDK does not wrap;
- as Double Take does (api/src/util/detectors/compreface.js): train with `POST /recognition/faces?subject=`,
  recognize with `det_prob_threshold=0.8`, untrain with `DELETE /recognition/faces?subject=`, and read
  the answer with its `normalize` rules (code 28: no faces; `subjects[0].similarity` x 100 against its
  default confidences, match 60 and unknown 40).
"""

from __future__ import annotations

import base64
import io
import uuid

import pytest
import requests
from PIL import Image, ImageFilter

from service_common.access import KeyStore, new_token
from service_common.redis_client import connect
from tests.helpers import lfw_image
from tests.helpers.images import blank, side_by_side

ADMIN = new_token()


@pytest.fixture(autouse=True)
def admin_key(redis_server) -> None:
    KeyStore(connect(redis_server.url)).register(ADMIN, "tests", ["admin"])


def key(redis_server, *scopes: str) -> str:
    token = new_token()
    KeyStore(connect(redis_server.url)).register(token, f"cf{uuid.uuid4().hex[:6]}", list(scopes))
    return token


def photo(name: str, n: int) -> bytes:
    return lfw_image(name, n).read_bytes()


def blurry(name: str, n: int) -> bytes:
    out = io.BytesIO()
    Image.open(lfw_image(name, n)).filter(ImageFilter.GaussianBlur(4)).save(out, "JPEG")
    return out.getvalue()


class Sdk:
    """The requests compreface-sdk 0.6.0 sends (compreface/client/*.py), one method per SDK call."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url, self.key = url + "/api/v1", api_key
        self.json = {"Content-Type": "application/json", "x-api-key": api_key}

    def _file(self, path: str, image: bytes, params: dict | None = None, field: str = "file") -> dict:
        return requests.post(self.url + path, params=params, files={field: ("image.jpg", image)},
                             headers={"x-api-key": self.key}, timeout=60).json()

    def add_subject(self, subject: str) -> dict:
        return requests.post(self.url + "/recognition/subjects", json={"subject": subject}, headers=self.json).json()

    def list_subjects(self) -> dict:
        return requests.get(self.url + "/recognition/subjects", headers=self.json).json()

    def rename_subject(self, subject: str, new: str) -> dict:
        return requests.put(f"{self.url}/recognition/subjects/{subject}", json={"subject": new},
                            headers=self.json).json()

    def delete_subject(self, subject: str) -> dict:
        return requests.delete(f"{self.url}/recognition/subjects/{subject}", headers=self.json).json()

    def add_example(self, image: bytes, subject: str) -> dict:
        return self._file("/recognition/faces", image, {"subject": subject, "det_prob_threshold": 0.8})

    def list_examples(self) -> dict:
        return requests.get(self.url + "/recognition/faces", headers={"x-api-key": self.key}).json()

    def delete_example(self, image_id: str) -> dict:
        return requests.delete(f"{self.url}/recognition/faces/{image_id}", headers={"x-api-key": self.key}).json()

    def delete_all_examples(self, subject: str) -> dict:
        return requests.delete(f"{self.url}/recognition/faces?subject={subject}",
                               headers={"x-api-key": self.key}).json()

    def recognize(self, image: bytes, **options) -> dict:
        return self._file("/recognition/recognize", image, {"prediction_count": 1, **options})

    def verify_example(self, image: bytes, image_id: str) -> dict:
        return self._file(f"/recognition/faces/{image_id}/verify", image, {"det_prob_threshold": 0.8})

    def detect(self, image: bytes, **options) -> dict:
        return self._file("/detection/detect", image, options)

    def verify(self, source: bytes, target: bytes) -> dict:
        return requests.post(self.url + "/verification/verify", files={
            "source_image": ("image.jpg", source), "target_image": ("image.jpg", target)},
            headers={"x-api-key": self.key}, timeout=60).json()


def test_sdk_calls(analyzer, redis_server) -> None:
    url, _ = analyzer
    sdk = Sdk(url, key(redis_server, "faces:search", "identities:read", "identities:write"))
    assert sdk.add_subject("Colin") == {"subject": "Colin"}
    assert sdk.add_subject("Colin") == {"message": "Subject Colin already exists", "code": 43}
    assert "Colin" in sdk.list_subjects()["subjects"]
    examples = [sdk.add_example(photo("Colin_Powell", n), "Colin") for n in (1, 2)]
    assert all(e["subject"] == "Colin" and len(e["image_id"]) == 32 for e in examples), examples
    laura = sdk.add_example(photo("Laura_Bush", 1), "Laura")  # a new subject, made by its first example
    assert laura["subject"] == "Laura"
    listed = sdk.list_examples()
    assert {(f["image_id"], f["subject"]) for f in listed["faces"]} >= {(e["image_id"], "Colin") for e in examples}
    assert listed["total_elements"] >= 3 and listed["page_number"] == 0 and listed["page_size"] == 20

    # One frame, two people: each face gets its subject, Double Take-style similarity on 0-1.
    both = sdk.recognize(side_by_side(("Colin_Powell", 3), ("Laura_Bush", 2)), face_plugins="landmarks")
    assert len(both["result"]) == 2, both
    by_side = {r["box"]["x_min"] < 250: r for r in both["result"]}
    assert by_side[True]["subjects"][0]["subject"] == "Colin" and by_side[False]["subjects"][0]["subject"] == "Laura"
    assert all(r["subjects"][0]["similarity"] >= 0.6 for r in both["result"])
    assert all(len(r["landmarks"]) == 5 and "embedding" not in r for r in both["result"])
    box = by_side[True]["box"]
    assert 0 < box["probability"] <= 1 and box["x_min"] < box["x_max"] and box["y_min"] < box["y_max"]
    # The calculator plugin (descriptors) is off unless the operator turns it on.
    assert "embedding" not in sdk.recognize(photo("Colin_Powell", 4), face_plugins="calculator")["result"][0]

    # Verification: an example against a new photo, and two images.
    same = sdk.verify_example(photo("Colin_Powell", 5), examples[0]["image_id"])
    assert same["result"][0]["similarity"] >= 0.6, same
    other = sdk.verify_example(photo("Laura_Bush", 3), examples[0]["image_id"])
    assert other["result"][0]["similarity"] < 0.6
    pair = sdk.verify(photo("Colin_Powell", 6), side_by_side(("Laura_Bush", 4), ("Colin_Powell", 7)))
    matches = pair["result"][0]["face_matches"]
    assert len(matches) == 2 and matches[0]["box"]["x_min"] >= 250 and matches[0]["similarity"] >= 0.6
    assert matches[1]["similarity"] < 0.6 and "box" in pair["result"][0]["source_image_face"]
    found = sdk.detect(side_by_side(("Colin_Powell", 8), ("Laura_Bush", 5)), face_plugins="landmarks")
    assert len(found["result"]) == 2 and "subjects" not in found["result"][0]
    assert sdk.detect(blank("JPEG")) == {"message": "No face is found in the given image", "code": 28}

    # Rename; delete by image_id, then every example of a subject, then the subject.
    assert sdk.rename_subject("Laura", "Laura Bush") == {"updated": True}
    assert "Laura Bush" in sdk.list_subjects()["subjects"] and "Laura" not in sdk.list_subjects()["subjects"]
    assert sdk.delete_example(examples[0]["image_id"]) == {"image_id": examples[0]["image_id"], "subject": "Colin"}
    assert sdk.delete_example(examples[0]["image_id"])["code"] == 11
    assert sdk.delete_all_examples("Colin") == {"deleted": 1}
    assert sdk.recognize(photo("Colin_Powell", 3))["result"][0]["subjects"][0]["subject"] != "Colin"
    assert sdk.delete_subject("Colin") == {"subject": "Colin"}
    assert sdk.delete_subject("Colin") == {"message": "Subject Colin not found", "code": 42}
    assert "Colin" not in sdk.list_subjects()["subjects"]

    # Renaming onto an existing subject merges the two; examples deleted by a list of ids; everything.
    a = sdk.add_example(photo("Tony_Blair", 5), "Blair A")
    b = sdk.add_example(photo("Tony_Blair", 6), "Blair B")
    assert sdk.rename_subject("Blair A", "Blair B") == {"updated": True}
    assert "Blair A" not in sdk.list_subjects()["subjects"]
    merged = requests.get(sdk.url + "/recognition/faces", params={"subject": "Blair B"},
                          headers={"x-api-key": sdk.key}).json()
    assert {f["image_id"] for f in merged["faces"]} == {a["image_id"], b["image_id"]}
    gone = requests.post(sdk.url + "/recognition/faces/delete", json=[a["image_id"], "f" * 32],
                         headers={"x-api-key": sdk.key}).json()
    assert gone == [{"image_id": a["image_id"], "subject": "Blair B"}]
    everyone = requests.delete(sdk.url + "/recognition/subjects", headers=sdk.json).json()
    assert everyone["deleted"] >= 2 and sdk.list_subjects() == {"subjects": []}


def test_the_compreface_sdk_itself(analyzer, redis_server) -> None:
    """compreface-sdk's own classes, unmodified, against the real analyzer: subjects and examples,
    recognition in a two-face image, verification, detection, deletion by image_id and by subject."""
    from compreface import CompreFace

    url, _ = analyzer
    host, port = url.rsplit(":", 1)
    app = CompreFace(host, port, {"limit": 0, "det_prob_threshold": 0.8, "prediction_count": 1})
    recognition = app.init_face_recognition(key(redis_server, "faces:search", "identities:read", "identities:write"))
    subjects, faces = recognition.get_subjects(), recognition.get_face_collection()
    assert subjects.add("Sdk Colin") == {"subject": "Sdk Colin"}
    colin = [faces.add(photo("Colin_Powell", n), "Sdk Colin") for n in (1, 2)]
    laura = faces.add(photo("Laura_Bush", 1), "Sdk Laura")
    assert all(len(e["image_id"]) == 32 for e in [*colin, laura]) and "Sdk Laura" in subjects.list()["subjects"]

    both = recognition.recognize(side_by_side(("Colin_Powell", 3), ("Laura_Bush", 2)))["result"]
    named = {r["box"]["x_min"] < 250: r["subjects"][0]["subject"] for r in both}
    assert named == {True: "Sdk Colin", False: "Sdk Laura"}
    assert faces.verify(photo("Colin_Powell", 5), colin[0]["image_id"])["result"][0]["similarity"] >= 0.6
    assert faces.verify(photo("Laura_Bush", 3), colin[0]["image_id"])["result"][0]["similarity"] < 0.6

    verification = app.init_face_verification(key(redis_server, "faces:verify"))
    pair = verification.verify(photo("Colin_Powell", 6), photo("Colin_Powell", 7))["result"][0]
    assert pair["face_matches"][0]["similarity"] >= 0.6
    detection = app.init_face_detection(key(redis_server, "faces:detect"))
    found = detection.detect(side_by_side(("Colin_Powell", 8), ("Laura_Bush", 5)), {"face_plugins": "landmarks"})
    assert len(found["result"]) == 2 and all(len(f["landmarks"]) == 5 for f in found["result"])
    assert detection.detect(blank("JPEG")) == {"message": "No face is found in the given image", "code": 28}

    assert faces.delete(colin[0]["image_id"]) == {"image_id": colin[0]["image_id"], "subject": "Sdk Colin"}
    assert faces.delete_all("Sdk Colin") == {"deleted": 1}
    assert "Sdk Colin" not in {f["subject"] for f in faces.list()["faces"]}
    assert subjects.delete("Sdk Laura") == {"subject": "Sdk Laura"}
    left = recognition.recognize(photo("Laura_Bush", 2))["result"][0]["subjects"]
    assert "Sdk Laura" not in {s["subject"] for s in left}


def test_keys_scopes_errors_and_audit(analyzer, redis_server) -> None:
    url, _ = analyzer
    detector = Sdk(url, key(redis_server, "faces:detect"))
    # This photo has a second, smaller face in the background, detected at a lower score.
    everyone = detector.detect(photo("Tony_Blair", 1))["result"]
    assert len(everyone) == 2 and min(f["box"]["probability"] for f in everyone) < 0.95
    assert len(detector.detect(photo("Tony_Blair", 1), det_prob_threshold=0.95)["result"]) == 1
    r = requests.post(url + "/api/v1/recognition/recognize", files={"file": ("a.jpg", photo("Tony_Blair", 1))},
                      headers={"x-api-key": detector.key}, timeout=60)
    assert r.status_code == 403 and r.json()["code"] == 0 and "faces:search" in r.json()["message"]
    missing = requests.post(url + "/api/v1/detection/detect", files={"file": ("a.jpg", b"x")}, timeout=60)
    assert missing.status_code == 401 and missing.json()["code"] == 20
    wrong = requests.get(url + "/api/v1/recognition/subjects", headers={"x-api-key": "fck_nope"}, timeout=60)
    assert wrong.status_code == 401 and set(wrong.json()) == {"message", "code"}
    # x-api-key is for /api/v1 only; the native API still wants Authorization: Bearer.
    assert requests.get(url + "/v1/identities", headers={"x-api-key": ADMIN}, timeout=60).status_code == 401

    admin = Sdk(url, ADMIN)
    bad = requests.post(url + "/api/v1/recognition/recognize", files={"file": ("a.jpg", b"not an image")},
                        headers={"x-api-key": ADMIN}, timeout=60)
    assert bad.status_code == 400 and set(bad.json()) == {"message", "code"}
    no_file = requests.post(url + "/api/v1/recognition/recognize", headers={"x-api-key": ADMIN}, timeout=60)
    assert no_file.status_code == 400 and no_file.json()["code"] == 34
    as_json = requests.post(url + "/api/v1/detection/detect", headers={"x-api-key": ADMIN},
                            json={"file": base64.b64encode(photo("Tony_Blair", 2)).decode()}, timeout=60)
    assert as_json.status_code == 200 and len(as_json.json()["result"]) >= 1
    assert requests.post(url + "/api/v1/detection/detect", headers={"x-api-key": ADMIN}, json={"file": "%%"},
                         timeout=60).json()["code"] == 26
    by_json = requests.post(url + "/api/v1/recognition/faces", params={"subject": "TB"}, headers={"x-api-key": ADMIN},
                            json={"file": base64.b64encode(photo("Tony_Blair", 3)).decode()}, timeout=60)
    assert by_json.status_code == 201 and by_json.json()["subject"] == "TB", by_json.text
    blurred = requests.post(url + "/api/v1/recognition/faces", params={"subject": "TB"}, headers={"x-api-key": ADMIN},
                            files={"file": ("b.jpg", blurry("Jennifer_Aniston", 1))}, timeout=60)
    assert blurred.status_code == 400 and "blurred" in blurred.json()["message"]  # the quality gate holds here too
    assert admin.verify_example(photo("Tony_Blair", 2), "0" * 32)["code"] == 11
    assert admin.delete_all_examples("Nobody")["code"] == 42
    for action, outcome in (("compreface.detect", "ok"), ("compreface.recognize", "failed")):
        audit = requests.get(url + "/v1/audit", params={"action": action, "limit": 500},
                             headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60).json()["items"]
        assert any(e["outcome"] == outcome for e in audit), (action, outcome)


def normalize(data: dict) -> list[dict]:
    """Double Take's reading of a recognize answer (compreface.js `normalize`, default confidences)."""
    if "result" not in data:
        if data.get("code") == 28:
            return []
        raise AssertionError(data)
    out = []
    for face in data["result"]:
        best = face["subjects"][0] if face["subjects"] else None
        confidence = round(best["similarity"] * 100, 2) if best else 0
        out.append({"name": best["subject"].lower() if best and confidence >= 40 else "unknown",
                    "confidence": confidence, "match": confidence >= 60})
    return out


def test_double_take_enrols_matches_and_leaves_strangers_unknown(analyzer, redis_server) -> None:
    url, _ = analyzer
    headers = {"x-api-key": key(redis_server, "faces:search", "identities:read", "identities:write")}
    api = url + "/api/v1/recognition"

    def train(name: str, image: bytes) -> requests.Response:
        return requests.post(api + "/faces", params={"subject": name}, files={"file": ("a.jpg", image)},
                             headers=headers, timeout=60)

    def recognize(image: bytes) -> list[dict]:
        r = requests.post(api + "/recognize", params={"det_prob_threshold": 0.8}, files={"file": ("a.jpg", image)},
                          headers=headers, timeout=60)
        return normalize(r.json())

    requests.delete(api + "/faces", params={"subject": "Gerhard"}, headers=headers, timeout=60)
    for n in (1, 2, 3):
        assert train("Gerhard", photo("Gerhard_Schroeder", n)).status_code == 201
    # Held-out photos of him are matches; strangers are unknown; an empty frame is no face at all.
    for n in (10, 11, 12):
        (face,) = recognize(photo("Gerhard_Schroeder", n))
        assert face["name"] == "gerhard" and face["match"], (n, face)
    for name, n in (("Jennifer_Aniston", 1), ("Hugo_Chavez", 1), ("Serena_Williams", 2)):
        (face,) = recognize(photo(name, n))
        assert face["name"] == "unknown" and not face["match"], (name, face)
    assert recognize(blank("JPEG")) == []
    # Untraining: his photos are not matched any more.
    r = requests.delete(api + "/faces", params={"subject": "Gerhard"}, headers=headers, timeout=60)
    assert r.status_code == 200 and r.json() == {"deleted": 3}
    (face,) = recognize(photo("Gerhard_Schroeder", 10))
    assert not face["match"]
