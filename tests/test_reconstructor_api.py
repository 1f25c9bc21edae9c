"""The reconstructor's image endpoint: formats, sizes and quality, and what each failure answers. A real
reconstructor (uvicorn on loopback, real Redis) fetches from the edge's real Fetch service over gRPC,
backed by a real EnhancementStore holding one face (so a second one evicts the first)."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image

from cloud_reconstructor.api import create_app as create_reconstructor
from cloud_reconstructor.settings import ReconstructorSettings
from devstack.stack import free_port
from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.fetch_service import make_server
from service_common.redis_keys import face_key
from tests.helpers import lfw_image
from tests.helpers.servers import api_client, serve


@pytest.fixture(scope="module")
def coded(front_end):
    from facecodec.codec.profiles import codec_by_name
    from facecodec.frontend import decode_image

    face = front_end.largest_face(decode_image(lfw_image("Colin_Powell", 2).read_bytes()))
    return codec_by_name("learned").encode(face.crop, front_end.describe(face.crop)[0])


def problem(r) -> dict:
    assert r.headers["content-type"] == "application/problem+json", r.text
    body = r.json()
    assert body["status"] == r.status_code and body["title"] and body["detail"], body
    return body


def test_image_formats_sizes_and_failures(redis_server, redis_client, coded, tmp_path) -> None:
    store = EnhancementStore(tmp_path / "layers", max_faces=1, max_bytes=10**8)
    server, port = make_server(store, 0)
    server.start()
    kept, evicted, elsewhere = (uuid.uuid4().hex for _ in range(3))
    gone = f"127.0.0.1:{free_port()}"  # nothing listens there
    for face_id, edge in ((kept, "edge-a"), (evicted, "edge-a"), (elsewhere, "edge-gone")):
        redis_client.hset(face_key(face_id), mapping={"base_layer": coded.base_only().to_bytes(),
                                                         "edge_id": edge, "enhancement_levels": 4})
    store.put(evicted, coded.to_bytes(), 4)
    store.put(kept, coded.to_bytes(), 4)  # the store holds one face: `evicted` is gone from the edge
    assert store.get(evicted) is None
    settings = ReconstructorSettings(redis_url=redis_server.url, http_port=free_port(), fetch_timeout_s=1.0,
                                     fetch_retries=0, edges={"edge-a": f"127.0.0.1:{port}", "edge-gone": gone},
                                     grpc_insecure=True)
    viewer = api_client(redis_server.url, ("faces:view",))
    try:
        with serve(create_reconstructor(settings)) as url:
            def image(face_id: str, **params):
                return viewer.get(f"{url}/v1/faces/{face_id}/image", params=params, timeout=30)

            png = image(kept)
            assert png.status_code == 200 and png.headers["content-type"] == "image/png"
            native = Image.open(io.BytesIO(png.content)).size
            sizes = {}
            for fmt, magic in (("jpeg", b"\xff\xd8"), ("webp", b"RIFF")):
                for quality in (10, 95):
                    r = image(kept, layers="full", level=2, format=fmt, size=64, quality=quality)
                    assert r.status_code == 200 and r.headers["content-type"] == f"image/{fmt}", r.text
                    assert r.content.startswith(magic) and r.headers["x-enhancement-level"] == "2"
                    assert Image.open(io.BytesIO(r.content)).size == (64, 64)
                    sizes[fmt, quality] = len(r.content)
            assert sizes["jpeg", 10] < sizes["jpeg", 95] and sizes["webp", 10] < sizes["webp", 95]
            big = image(kept, size=512)
            assert Image.open(io.BytesIO(big.content)).size == (512, 512) != native

            refused = {"size 8": image(kept, size=8), "size 4096": image(kept, size=4096),
                       "png quality": image(kept, quality=50), "gif": image(kept, format="gif"),
                       "quality 0": image(kept, format="jpeg", quality=0), "level on base": image(kept, level=1),
                       "level 9": image(kept, layers="full", level=9)}
            assert {k: r.status_code for k, r in refused.items()} == dict.fromkeys(refused, 422)
            assert all(problem(r) for r in refused.values())
            assert "errors" in refused["size 8"].json()

            unknown = image(uuid.uuid4().hex)
            assert unknown.status_code == 404 and "not found" in problem(unknown)["detail"]

            lost = image(evicted, layers="full")
            assert lost.status_code == 410 and "layers=base" in problem(lost)["detail"]
            assert image(evicted).status_code == 200  # the base-layer view still served

            away = image(elsewhere, layers="full")
            assert away.status_code == 503 and int(away.headers["retry-after"]) > 0
            assert "unreachable" in problem(away)["detail"] and "127.0.0.1" not in away.text
            assert image(elsewhere, format="webp").status_code == 200  # the base-layer view still served
    finally:
        server.stop(0)
        store.close()
