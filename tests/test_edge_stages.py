"""The edge's stages: frames of several cameras in parallel, each camera's frames committed in order,
bounded admission (refuse, wait, or drop a camera's oldest frame) and quality gates, on real models."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from edge_encoder.pipeline import EncodePipeline, FrameResult, QualityGate, TooManyCameras
from edge_encoder.stages import FrameDropped, FrameStages, Saturated
from edge_encoder.tracker import FaceTracker
from facecodec.codec.profiles import codec_by_name
from tests.helpers import lfw_image


def png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def frames() -> dict[str, bytes]:
    face = np.asarray(Image.open(lfw_image("George_W_Bush", 1)).convert("RGB"))
    big = np.full((1080, 1920, 3), 90, np.uint8)
    big[400:650, 800:1050] = face  # a 1080p frame: the tiled pyramid makes it the slow one
    return {"face": lfw_image("George_W_Bush", 1).read_bytes(), "slow": png(big),
            "blank": png(np.full((64, 64, 3), 128, np.uint8))}


@pytest.fixture
def pipeline(front_end) -> EncodePipeline:
    return EncodePipeline(codec_by_name("scalable"), None, front_end, max_cameras=4)


class Sink:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.results: list[FrameResult] = []
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def __call__(self, result: FrameResult) -> None:
        time.sleep(self.delay_s)
        with self.lock:
            self.results.append(result)


def test_cameras_beyond_the_bound_are_refused_and_known_ones_still_served(pipeline, frames) -> None:
    pipeline.max_cameras = 2
    assert pipeline.encode_frame("a", frames["blank"]).detected == 0
    assert pipeline.encode_frame("b", frames["blank"]).detected == 0
    with pytest.raises(TooManyCameras, match="at most 2 cameras"):
        pipeline.encode_frame("c", frames["blank"])
    assert pipeline.encode_frame("a", frames["blank"]).faces == []


def test_a_cameras_frames_are_committed_in_the_order_they_came_even_when_later_ones_finish_first(
        pipeline, frames) -> None:
    sink = Sink()
    stages = FrameStages(pipeline, sink, workers=2, max_in_flight=16).start()
    try:
        order = ["slow", "blank", "face", "blank", "slow", "blank"]
        futures = [stages.submit("a", frames[name], overflow="reject") for name in order]
        other = stages.submit("b", frames["blank"])
        results = [f.result(timeout=60) for f in futures]
        other.result(timeout=60)
    finally:
        stages.stop()
    committed = [r for r in sink.results if r.camera_id == "a"]
    assert [r.captured_at for r in committed] == [r.captured_at for r in results]  # sink saw admission order
    assert [r.detected for r in committed] == [1, 0, 1, 0, 1, 0]
    assert stages.in_flight == 0


def test_a_saturated_edge_refuses_waits_or_drops_the_cameras_oldest_frame(pipeline, frames) -> None:
    sink = Sink(delay_s=0.3)  # a slow store keeps the slots taken long enough to look at
    stages = FrameStages(pipeline, sink, workers=1, max_in_flight=2).start()
    try:
        first = stages.submit("a", frames["slow"])
        second = stages.submit("a", frames["blank"])
        assert stages.saturated
        with pytest.raises(Saturated):
            stages.submit("b", frames["blank"])  # overflow reject: refused at once
        # drop-oldest: the camera's oldest frame not yet started gives its slot to the new one
        newest = stages.submit("a", frames["face"], overflow="drop-oldest")
        outcomes = []
        for future in (first, second):
            try:
                future.result(timeout=60)
                outcomes.append("done")
            except FrameDropped:
                outcomes.append("dropped")
        assert outcomes.count("dropped") == 1
        assert newest.result(timeout=60).detected == 1
        assert pipeline.metrics.frames_dropped.labels("a")._value.get() == 1
        # waiting (gRPC streams): admitted once a slot frees
        stages.submit("b", frames["slow"])
        stages.submit("b", frames["slow"])
        waited = stages.submit("b", frames["blank"], wait_s=30)
        assert waited.result(timeout=60).detected == 0
    finally:
        stages.stop()
    assert stages.in_flight == 0
    assert len(sink.results) == 5  # the six admitted frames but the dropped one reached the store


def test_gates_withhold_small_or_poor_faces_and_say_why(front_end, frames) -> None:
    codec = codec_by_name("scalable")
    small = EncodePipeline(codec, None, front_end, gate=QualityGate(min_face_px=400))
    result = small.encode_frame("a", frames["face"])
    assert (result.detected, result.faces, result.withheld) == (1, [], {"below_min_face_px": 1})
    poor = EncodePipeline(codec, None, front_end, gate=QualityGate(min_quality=0.99))
    assert poor.encode_frame("a", frames["face"]).withheld == {"below_min_quality": 1}
    tracked = EncodePipeline(codec, None, front_end, tracker=FaceTracker(link=0.5, near=0.3))
    first = tracked.encode_frame("a", frames["face"])
    again = tracked.encode_frame("a", frames["face"])
    assert len(first.faces) == 1 and 0 < first.faces[0].quality.score <= 1
    assert (again.faces, again.withheld) == ([], {"tracked": 1})


@pytest.mark.slow
def test_the_edge_detects_codes_and_stores_without_loading_torch(tmp_path) -> None:
    """Torch and CompressAI's models are ~700 MB of the edge's memory it never uses: its models run on
    onnxruntime and its entropy coder is CompressAI's rANS extension, loaded on its own."""
    import subprocess
    import sys

    script = f"""
import sys
from edge_encoder.node import build_node
from edge_encoder.settings import EdgeSettings
from facecodec.frontend import decode_image
from tests.helpers import lfw_image
node = build_node(EdgeSettings(data_dir={str(tmp_path)!r}))
face = node.pipeline.encode_frame("a", lfw_image("Colin_Powell", 1).read_bytes()).faces[0]
crop = decode_image(face.source)
coded = node.pipeline.codec.encode(crop, node.pipeline.describe(crop[None])[0], node.pipeline.levels)
assert len(coded.enhancements) == node.pipeline.levels > 0
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "compressai")))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_a_clean_stop_reports_the_open_tracks_closed_behind_their_faces(tmp_path, frames) -> None:
    from facecoding.v1 import ingest_pb2

    from edge_encoder.node import build_node
    from edge_encoder.outbox import Outbox
    from edge_encoder.settings import EdgeSettings

    node = build_node(EdgeSettings(data_dir=tmp_path, track_timeout_s=60))
    node.start()
    first = node.ingest_frame("gate", frames["face"], None)
    node.ingest_frame("gate", frames["face"], None)  # the same person: tracked, not uplinked again
    node.stop()
    node.outbox.close()
    queued = Outbox(tmp_path / "outbox.sqlite3").pending(10)
    assert [face_id for face_id, _ in queued] == [first.faces[0].face_id, f"track-{first.faces[0].track_id}"]
    notice = ingest_pb2.FaceRecord.FromString(queued[1][1])
    assert notice.track_closed.faces_seen == 2 and notice.track_closed.faces_uplinked == 1
    assert not notice.base_layer and notice.camera_id == "gate"


@pytest.mark.slow
def test_tracks_open_when_the_edge_is_killed_are_closed_when_it_starts_again(tmp_path) -> None:
    """The edge holds each open track's closing notice aside as the track goes on; SIGKILLed, it leaves
    them behind, and its next start queues them behind the faces, so the cloud's track does not stay
    open for ever."""
    import subprocess
    import sys

    from facecoding.v1 import ingest_pb2

    from edge_encoder.node import build_node
    from edge_encoder.settings import EdgeSettings

    script = f"""
import os, signal, time
from edge_encoder.node import build_node
from edge_encoder.settings import EdgeSettings
from tests.helpers import lfw_image
node = build_node(EdgeSettings(data_dir={str(tmp_path)!r}, track_timeout_s=60))
node.start()
frame = lfw_image("George_W_Bush", 1).read_bytes()
print(node.ingest_frame("gate", frame, None).faces[0].track_id, flush=True)
node.ingest_frame("gate", frame, None)
deadline = time.time() + 10
while not node.outbox.held_open() and time.time() < deadline:
    time.sleep(0.1)
os.kill(os.getpid(), signal.SIGKILL)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == -9, run.stderr
    track_id = run.stdout.split()[0]
    node = build_node(EdgeSettings(data_dir=tmp_path, track_timeout_s=60))
    assert [f for f, _ in node.outbox.held_open()] == [f"track-{track_id}"]
    assert len(node.outbox.pending(10)) == 1  # its face; the notice is only held
    node.start()
    try:
        queued = node.outbox.pending(10)
        assert [f for f, _ in queued][1:] == [f"track-{track_id}"] and not node.outbox.held_open()
        notice = ingest_pb2.FaceRecord.FromString(queued[1][1])
        assert notice.track_closed.faces_seen == 2 and notice.track_closed.faces_uplinked == 1
        assert notice.camera_id == "gate" and notice.track_id == track_id
    finally:
        node.stop()
