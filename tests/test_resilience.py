"""Failure paths on real parts: the cloud down while frames arrive, an edge gone when a face is viewed."""

from __future__ import annotations

import uuid

import httpx
import pytest

from cloud_analyzer.ingest_service import make_server
from cloud_analyzer.store import Store
from cloud_reconstructor.api import create_app as create_reconstructor
from cloud_reconstructor.settings import ReconstructorSettings
from edge_encoder.api import create_app as create_edge
from edge_encoder.settings import EdgeSettings
from facecodec.codec.profiles import codec_by_name
from service_common.redis_client import connect
from service_common.redis_keys import face_key
from tests.helpers import free_port, lfw_image, wait_until
from tests.helpers.servers import api_client, edge_admin, serve


@pytest.mark.slow
def test_edge_keeps_faces_while_cloud_is_down_then_delivers(redis_server, redis_client, tmp_path) -> None:
    ingest_port = free_port()
    settings = EdgeSettings(http_port=free_port(), grpc_port=free_port(), data_dir=tmp_path / "edge",
                            cloud_ingest_address=f"127.0.0.1:{ingest_port}", upload_retry_max_s=1.0,
                            upload_timeout_s=5.0, upload_stall_s=1.0, camera_auth="off", grpc_insecure=True)
    with serve(create_edge(settings)) as edge:
        r = httpx.post(f"{edge}/v1/cameras/door/frames", content=lfw_image("Tony_Blair", 1).read_bytes(),
                       headers={"content-type": "image/jpeg"}, timeout=60)
        assert r.status_code == 201
        face_ids = [f["face_id"] for f in r.json()["faces"]]
        # Failed upload attempts for longer than EDGE_UPLOAD_STALL_S (1 s): the edge says it is stalled.
        health = wait_until(
            lambda: (h := httpx.get(f"{edge}/v1/status", headers=edge_admin(settings)).json())["uploads"]["stalled"]
            and h, 30, 0.1, "uploads reported stalled")
        assert httpx.get(f"{edge}/healthz").json() == {"status": "degraded"}  # all the open health says
        assert health["outbox_pending"] == len(face_ids) >= 1
        assert health["upload_error"].startswith("UNAVAILABLE")
        assert health["status"] == "degraded" and health["uploads"]["stalled"], health
        assert health["uploads"]["oldest_pending_s"] >= 1.0 and health["uploads"]["errors"] >= 1
        ready = httpx.get(f"{edge}/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["uploads_flowing"] is False

        server, _ = make_server(Store(connect(redis_server.url)), ingest_port, {"edge-1"})
        server.start()
        try:
            wait_until(lambda: httpx.get(f"{edge}/v1/status", headers=edge_admin(settings)).json()["outbox_pending"]
                       == 0, 30, 0.2, "outbox empty")
            health = httpx.get(f"{edge}/v1/status", headers=edge_admin(settings)).json()
            assert health["outbox_pending"] == 0 and health["status"] == "ok" and not health["uploads"]["stalled"]
            assert httpx.get(f"{edge}/readyz").status_code == 200
            for face_id in face_ids:
                assert redis_client.hget(face_key(face_id), "camera_id") == b"door"
        finally:
            server.stop(0)


def test_reconstructor_serves_base_when_edge_is_gone(redis_server, redis_client, front_end) -> None:
    from facecodec.frontend import decode_image

    face = front_end.largest_face(decode_image(lfw_image("Colin_Powell", 2).read_bytes()))
    codec = codec_by_name("learned")
    coded = codec.encode(face.crop, front_end.describe(face.crop)[0])
    face_id = uuid.uuid4().hex
    gone = f"127.0.0.1:{free_port()}"  # nothing listens there
    redis_client.hset(face_key(face_id), mapping={"base_layer": coded.base_only().to_bytes(),
                                                     "edge_id": "edge-gone", "enhancement_levels": 4})
    settings = ReconstructorSettings(redis_url=redis_server.url, http_port=free_port(), fetch_timeout_s=1.0,
                                     fetch_retries=1, edges={"edge-gone": gone}, grpc_insecure=True)
    viewer = api_client(redis_server.url, ("faces:view",))
    with serve(create_reconstructor(settings)) as url:
        base = viewer.get(f"{url}/v1/faces/{face_id}/image", params={"layers": "base"})
        assert base.status_code == 200 and base.content.startswith(b"\x89PNG")
        full = viewer.get(f"{url}/v1/faces/{face_id}/image", params={"layers": "full"}, timeout=30)
        assert full.status_code == 503 and "unreachable" in full.json()["detail"] and full.headers["retry-after"]
        assert "127.0.0.1" not in full.text and gone.split(":")[1] not in full.text  # no internal addresses
        bad_level = viewer.get(f"{url}/v1/faces/{face_id}/image", params={"layers": "full", "level": 9})
        assert bad_level.status_code == 422
        redis_client.hset(face_key(face_id), "base_layer", b"FC\x01garbage")
        corrupt = viewer.get(f"{url}/v1/faces/{face_id}/image", params={"layers": "base"})
        assert corrupt.status_code == 502 and "cannot be decoded" in corrupt.json()["detail"]
        assert "Error" not in corrupt.text
