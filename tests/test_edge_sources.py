"""Cameras the edge watches itself: per-camera settings from a TOML file, a video file played as a camera
(PyAV) through the real edge app, and sources that fail or do not exist."""

from __future__ import annotations

from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from edge_encoder.api import create_app
from edge_encoder.cameras import CameraConfigError, Cameras
from edge_encoder.settings import EdgeSettings
from tests.helpers import free_port, lfw_image, wait_until
from tests.helpers.servers import edge_admin, serve


def write_video(path: Path, seconds: float, fps: int = 10) -> Path:
    """An H.264 MP4: a grey 640x480 scene with one LFW face that walks across it."""
    face = np.asarray(Image.open(lfw_image("Colin_Powell", 1)).convert("RGB"))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for n in range(int(seconds * fps)):
            rgb = np.full((480, 640, 3), 100, np.uint8)
            x = 20 + 3 * n
            rgb[100:350, x : x + 250] = face
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_a_failing_streams_credentials_stay_out_of_health_and_logs(caplog) -> None:
    from edge_encoder.cameras import CameraConfig
    from edge_encoder.metrics import EdgeMetrics
    from edge_encoder.sources import VideoSource

    config = CameraConfig(source="rtsp://admin:s3cret@127.0.0.1:9/stream", fps=1)
    source = VideoSource("cam", config, lambda *a: None, EdgeMetrics(), retry_max_s=1, open_timeout_s=1).start()
    try:
        wait_until(lambda: source.last_error, 30, 0.05, "the stream failing")
    finally:
        source.stop()
    health = str(source.health())
    assert source.last_error and "s3cret" not in health and "admin" not in health, health
    assert "s3cret" not in caplog.text


def test_camera_files_are_validated_with_the_reason(tmp_path) -> None:
    good = tmp_path / "cameras.toml"
    good.write_text('[cameras.gate-1]\noverflow = "drop-oldest"\n[cameras.lobby]\nsource = "rtsp://u:p@cam/1"\n'
                    "fps = 5\n")
    cameras = Cameras.load(good)
    assert cameras["gate-1"].overflow == "drop-oldest" and cameras["other"].overflow == "reject"
    assert list(cameras.sources()) == ["lobby"] and cameras["lobby"].fps == 5
    for text, reason in [('[cameras.a]\noverflow = "newest"\n', "overflow"), ("[cameras.a]\nfps = 0\n", "fps"),
                         ("[cameras.a]\nspeed = 1\n", "speed"), ('[cameras."a b"]\n', "camera ids"),
                         ("[cameras.a\n", "not TOML")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(CameraConfigError, match=reason):
            Cameras.load(bad)
    with pytest.raises(CameraConfigError, match="cannot read"):
        Cameras.load(tmp_path / "missing.toml")


@pytest.mark.slow
def test_a_video_file_is_watched_as_a_camera_sampled_at_its_fps_and_its_person_uplinked_once(tmp_path) -> None:
    video = write_video(tmp_path / "walk.mp4", seconds=3.0)
    cameras = tmp_path / "cameras.toml"
    cameras.write_text(f'[cameras.door]\nsource = "{video}"\nfps = 2\n\n'
                       f'[cameras.broken]\nsource = "{tmp_path / "nothing.mp4"}"\n')
    settings = EdgeSettings(http_port=free_port(), grpc_port=free_port(), data_dir=tmp_path / "edge",
                            camera_auth="off", cloud_ingest_address=f"127.0.0.1:{free_port()}", grpc_insecure=True,
                            cameras_file=cameras, upload_retry_max_s=1)
    with serve(create_app(settings)) as url:
        def door_done() -> dict:
            health = httpx.get(f"{url}/v1/status", headers=edge_admin(settings)).json()
            return health if health["sources"]["door"]["state"] == "ended" and \
                health["stages"]["frames_in_flight"] == 0 else {}

        health = wait_until(door_done, 60, 0.1, "the video played to its end and its frames processed")
        door, broken = health["sources"]["door"], health["sources"]["broken"]
        assert door["state"] == "ended", health
        assert 5 <= door["frames_sampled"] <= 7  # 3 s at 2 fps
        assert health["cameras"]["door"]["detected"] == door["frames_sampled"]
        assert health["cameras"]["door"]["uplinked"] == 1  # one person walking: one track, one uplink
        assert health["outbox_pending"] == 1
        assert broken["state"] == "reconnecting" and "nothing.mp4" in broken["last_error"]
        metrics = httpx.get(f"{url}/metrics", headers=edge_admin(settings)).text
        assert 'edge_source_errors_total{camera="broken"}' in metrics
        assert 'edge_faces_withheld_total{camera="door",reason="tracked"}' in metrics
        for gauge in ("edge_frames_in_flight", "edge_queue_analyse", "edge_queue_describe",
                      "edge_enhancement_store_evicted", "edge_detect_searched_share_count", "edge_frame_seconds_count"):
            assert gauge in metrics, gauge
