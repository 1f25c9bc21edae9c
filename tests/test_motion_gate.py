"""The motion gate: a fixed camera's frames are searched only where they changed or people are tracked,
and whole every refresh; a face walking across a still scene is found in every frame."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from PIL import Image

from edge_encoder.pipeline import EncodePipeline
from edge_encoder.tracker import FaceTracker
from facecodec.codec.profiles import codec_by_name
from facecodec.frontend.motion import MotionGate
from tests.helpers import lfw_image


def scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(120, 30, (1080, 1920, 3)), 0, 255).astype(np.uint8)


def inside(region: tuple[float, float, float, float], box: tuple[float, float, float, float]) -> bool:
    return region[0] <= box[0] and region[1] <= box[1] and region[2] >= box[2] and region[3] >= box[3]


def test_the_gate_returns_what_changed_and_what_is_tracked_and_the_whole_frame_on_refresh() -> None:
    gate, still = MotionGate(refresh_s=2.0), scene()
    assert gate.regions(still, now=0.0) is None  # no reference yet: search everything
    assert gate.regions(still, now=0.2) == []  # nothing changed, nobody tracked: nothing to search
    moved = still.copy()
    moved[500:560, 900:960] = 255
    [region] = gate.regions(moved, now=0.4)
    assert inside(region, (900, 500, 960, 560)) and region[2] - region[0] >= 320 and region[3] - region[1] >= 240
    tracked = (100.0, 100.0, 160.0, 170.0)
    regions = gate.regions(moved, keep=[tracked], now=0.6)  # still again, but someone is tracked there
    assert len(regions) == 1 and inside(regions[0], tracked)
    assert gate.regions(moved, now=2.1) is None  # refresh: the whole frame again
    assert gate.regions(255 - moved, now=2.3) is None  # most of the view changed: whole frame


def test_a_face_walking_across_a_still_scene_is_found_in_every_frame_searching_a_fraction(front_end) -> None:
    face = np.asarray(Image.open(lfw_image("Colin_Powell", 1)).convert("RGB"))[40:210, 60:190]
    face = np.asarray(Image.fromarray(face).resize((65, 85)))  # a ~50 px wide face in 1080p
    background = scene()
    pipeline = EncodePipeline(codec_by_name("scalable"), None, front_end, tracker=FaceTracker(link=0.5, near=0.3),
                              motion_gate=lambda: MotionGate(refresh_s=100.0))
    found = []
    for step in range(6):
        frame = background.copy()
        x = 300 + 40 * step
        frame[600:685, x : x + 65] = face
        analysed = pipeline.analyse(frame, "door")
        found.append(len(analysed.faces))
        if analysed.faces:
            analysed.descriptors = pipeline.describe(np.stack([f.crop for f in analysed.faces]))
        pipeline.commit("door", datetime.now(UTC), analysed)
    assert found == [1] * 6
    shares = pipeline.metrics.detect_searched_share
    assert shares._sum.get() < 1.0 + 5 * 0.2  # the first frame whole, the other five a small part each
