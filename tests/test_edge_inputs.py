"""The edge's REST and gRPC frame paths against hostile input, on a real uvicorn server: capture
times outside the window, foreign formats, decompression bombs and endless uploads are refused before
anything is decoded or stored."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
from facecoding.v1 import frames_pb2, frames_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from edge_encoder.api import create_app
from edge_encoder.settings import EdgeSettings
from tests.helpers import free_port, lfw_image
from tests.helpers.payloads import MULTIPART, EndlessBody, huge_png, image_as, multipart_file_head
from tests.helpers.servers import edge_admin, serve

LIMIT = 1024 * 1024
JPEG = {"content-type": "image/jpeg"}


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    settings = EdgeSettings(http_port=free_port(), grpc_port=free_port(), data_dir=tmp_path_factory.mktemp("edge"),
                            camera_auth="off",  # input checks here; camera tokens are tested in test_e2e
                            grpc_insecure=True,
                            cloud_ingest_address=f"127.0.0.1:{free_port()}", max_frame_bytes=LIMIT)
    with serve(create_app(settings)) as url:
        yield url, settings


def stored(url: str, settings: EdgeSettings) -> tuple[int, int]:
    health = httpx.get(f"{url}/v1/status", headers=edge_admin(settings)).json()
    return health["outbox_pending"], health["enhancement_store"]["faces"]


def test_capture_times_outside_the_window_are_422_and_nothing_is_stored(edge) -> None:
    url, settings = edge
    frame = lfw_image("Colin_Powell", 1).read_bytes()
    before = stored(url, settings)
    now = datetime.now(UTC)
    for captured_at in ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59-01:00",
                        (now + timedelta(days=1)).isoformat(), (now - timedelta(days=400)).isoformat()):
        r = httpx.post(f"{url}/v1/cameras/cam-t/frames", content=frame, headers=JPEG,
                       params={"captured_at": captured_at}, timeout=60)
        assert r.status_code == 422, (captured_at, r.status_code, r.text)
    assert stored(url, settings) == before
    naive_now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)  # no zone: UTC
    r = httpx.post(f"{url}/v1/cameras/cam-t/frames", content=frame, headers=JPEG,
                   params={"captured_at": naive_now.isoformat()}, timeout=60)
    assert r.status_code == 201 and datetime.fromisoformat(r.json()["captured_at"]) == naive_now.replace(tzinfo=UTC)


def test_grpc_frames_with_impossible_times_or_formats_are_invalid_and_the_stream_goes_on(edge) -> None:
    url, settings = edge
    good = lfw_image("Tony_Blair", 1).read_bytes()
    frames = [frames_pb2.Frame(camera_id="cam-g", captured_at=Timestamp(seconds=10**12), image=good),
              frames_pb2.Frame(camera_id="cam-g", captured_at=Timestamp(seconds=-10**11), image=good),
              frames_pb2.Frame(camera_id="cam-g", image=image_as("BMP")),
              frames_pb2.Frame(camera_id="cam-g", image=good)]
    with grpc.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
        acks = list(frames_pb2_grpc.FrameIngestStub(channel).SubmitFrames(iter(frames), timeout=60))
    Ack = frames_pb2.FrameAck
    assert [a.status for a in acks] == [Ack.INVALID, Ack.INVALID, Ack.INVALID, Ack.ACCEPTED], acks
    assert "captured_at" in acks[0].error and "captured_at" in acks[1].error and "BMP" in acks[2].error


def test_only_jpeg_png_and_webp_are_decoded(edge) -> None:
    url, _ = edge
    for fmt in ("BMP", "TIFF", "GIF"):
        r = httpx.post(f"{url}/v1/cameras/cam-f/frames", content=image_as(fmt),
                       headers={"content-type": "application/octet-stream"})
        assert r.status_code == 415 and fmt in r.json()["detail"] and "JPEG" in r.json()["detail"], r.text
    for fmt in ("JPEG", "PNG", "WEBP"):
        r = httpx.post(f"{url}/v1/cameras/cam-f/frames", content=image_as(fmt),
                       headers={"content-type": "application/octet-stream"}, timeout=60)
        assert r.status_code == 201, (fmt, r.text)


def test_a_decompression_bomb_is_refused_from_its_header(edge) -> None:
    url, _ = edge
    bomb = huge_png(8000, 6000)  # 48 MP, 144 MB decoded, ~150 KB sent
    started = time.monotonic()
    r = httpx.post(f"{url}/v1/cameras/cam-b/frames", content=bomb, headers={"content-type": "image/png"})
    assert r.status_code == 413 and "8000x6000" in r.json()["detail"], r.text
    took = time.monotonic() - started
    assert took < 3, f"refusing the bomb took {took:.1f} s: it was decoded (144 MB of pixels), not read from its header"


def test_bodies_past_the_limit_are_refused_while_they_stream(edge) -> None:
    """Chunked (no Content-Length), raw or multipart: 413 once the limit is passed; the client is
    stopped long before its 200 MB are sent. A declared Content-Length too large: 413 before any byte."""
    url, _ = edge
    for body, content_type in ((EndlessBody(200 * LIMIT), "image/jpeg"),
                               (EndlessBody(200 * LIMIT, prefix=multipart_file_head("frame")), MULTIPART)):
        r = httpx.post(f"{url}/v1/cameras/cam-c/frames", content=body, headers={"content-type": content_type},
                       timeout=30)
        assert r.status_code == 413 and "larger than" in r.json()["detail"], r.text
        assert body.sent < body.total // 2, body.sent  # stopped early, not read to the end
    host = urlsplit(url)
    with socket.create_connection((host.hostname, host.port), timeout=10) as s:
        s.sendall(b"POST /v1/cameras/cam-c/frames HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                  b"Content-Length: 1000000000000\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 413")
    assert httpx.get(f"{url}/healthz").status_code == 200  # and the edge serves on
