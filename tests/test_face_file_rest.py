"""The REST pair of face files: a real edge codes a photo's face into a `.fcb` behind its admin token, a
real reconstructor (real Redis, API keys, audit) decodes an uploaded `.fcb` to PNG with the view scopes,
and refuses hostile files with 4xx, never a 5xx."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from cloud_reconstructor.api import create_app as create_reconstructor
from cloud_reconstructor.settings import ReconstructorSettings
from devstack.stack import free_port
from edge_encoder.api import create_app as create_edge
from edge_encoder.settings import EdgeSettings
from facecodec.bitstream import parse
from facecodec.eval.metrics import psnr
from facecodec.frontend import FaceFrontEnd, decode_image
from service_common.access import AuditLog
from service_common.redis_client import connect
from tests.helpers import lfw_image
from tests.helpers.face_files import hostile_files
from tests.helpers.servers import api_client, edge_admin, serve

PHOTO = lfw_image("Laura_Bush", 1)
MEDIA_TYPE = "application/vnd.facecodec.face"


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    settings = EdgeSettings(http_port=free_port(), grpc_port=free_port(), data_dir=tmp_path_factory.mktemp("edge"),
                            edge_id="edge-files", cloud_ingest_address=f"127.0.0.1:{free_port()}",
                            grpc_insecure=True)
    with serve(create_edge(settings)) as url:
        yield url, edge_admin(settings)


@pytest.fixture(scope="module")
def reconstructor(redis_server):
    connect(redis_server.url).flushdb()
    settings = ReconstructorSettings(redis_url=redis_server.url, http_port=free_port(), grpc_insecure=True,
                                     max_upload_bytes=64 * 1024, rate_limit_per_s=10_000)  # the fuzz is fast
    with serve(create_reconstructor(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def fcb(edge) -> bytes:
    url, admin = edge
    r = httpx.post(f"{url}/v1/encode", content=PHOTO.read_bytes(), headers={**admin, "content-type": "image/jpeg"},
                   timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MEDIA_TYPE and r.headers["x-faces-found"] == "1"
    assert 'filename="face.fcb"' in r.headers["content-disposition"]
    return r.content


def test_the_edge_codes_a_photo_into_a_face_file_for_its_admin_only(edge, fcb: bytes) -> None:
    url, admin = edge
    face = parse(fcb)  # exactly the container of docs/bitstream.md
    assert face.model_id == 5 and len(face.enhancements) == 5
    for headers in ({}, {"authorization": "Bearer fea_wrong-token-of-enough-length-000000"}):
        r = httpx.post(f"{url}/v1/encode", content=PHOTO.read_bytes(), headers=headers, timeout=30)
        assert r.status_code == 401 and not r.content.startswith(b"FC")
    multipart = httpx.post(f"{url}/v1/encode", params={"levels": 0}, headers=admin, timeout=120,
                           files={"image": ("p.jpg", PHOTO.read_bytes(), "image/jpeg")})
    assert multipart.status_code == 200 and parse(multipart.content).enhancements == ()
    blank = io.BytesIO()
    Image.new("RGB", (160, 160), (90, 90, 90)).save(blank, format="PNG")
    for body, params, status, words in ((blank.getvalue(), {}, 422, "no face"),
                                        (b"not an image at all", {}, 422, "not a decodable image"),
                                        (PHOTO.read_bytes(), {"levels": 9}, 422, "levels must be 0..5")):
        r = httpx.post(f"{url}/v1/encode", content=body, params=params, headers=admin, timeout=60)
        assert r.status_code == status and words in r.text, r.text


def test_the_reconstructor_decodes_an_uploaded_face_file_with_the_view_scopes(reconstructor, redis_server,
                                                                              fcb: bytes) -> None:
    base_viewer = api_client(redis_server.url, ("faces:view_base",), name="preview")
    viewer = api_client(redis_server.url, ("faces:view",), name="viewer")
    upload = {"face": ("face.fcb", fcb, MEDIA_TYPE)}
    r = base_viewer.post(f"{reconstructor}/v1/decode", files=upload)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.headers["x-enhancement-level"] == "0"
    base = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    assert base_viewer.post(f"{reconstructor}/v1/decode", files=upload, params={"layers": "full"}).status_code == 403
    r = viewer.post(f"{reconstructor}/v1/decode", files=upload, params={"layers": "full"})
    assert r.status_code == 200 and r.headers["x-enhancement-level"] == "5"
    full = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    crop = FaceFrontEnd(detector="libfd").largest_face(decode_image(PHOTO.read_bytes())).crop
    assert psnr(crop, full) > 32.0 > 20.0 > psnr(crop, base), (psnr(crop, full), psnr(crop, base))
    r = viewer.post(f"{reconstructor}/v1/decode", files=upload, params={"layers": "full", "level": 7})
    assert r.status_code == 422 and "level 7" in r.text
    audit = AuditLog(connect(redis_server.url))
    entries, _ = audit.query(action="face.decode")
    assert {(e.key_name, e.outcome, e.layers) for e in entries} >= {("preview", "ok", "base"),
                                                                   ("viewer", "ok", "level 5")}
    assert all("sha256:" in e.detail for e in entries if e.outcome == "ok")
    with httpx.Client(headers=viewer.headers, timeout=30) as client:  # bounded body: refused as it arrives
        r = client.post(f"{reconstructor}/v1/decode", files={"face": ("big.fcb", b"FC" + bytes(200_000))})
    assert r.status_code == 413


def test_hostile_face_files_get_a_clear_4xx_never_a_5xx(reconstructor, redis_server, fcb: bytes) -> None:
    viewer = api_client(redis_server.url, ("faces:view",))
    statuses: dict[int, int] = {}
    for data in hostile_files(fcb, seed=11, count=150):
        r = viewer.post(f"{reconstructor}/v1/decode", params={"layers": "full"},
                        files={"face": ("f.fcb", data, MEDIA_TYPE)})
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code in (200, 422), (r.status_code, r.text)
        if r.status_code == 422:
            detail = r.json()["detail"]
            assert detail and "Traceback" not in r.text and "Error" not in r.text, detail
    assert statuses.get(422, 0) > 100, statuses
