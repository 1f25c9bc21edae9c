"""Frame -> faces -> coded faces: the edge's whole analysis path, independent of HTTP and gRPC."""

from __future__ import annotations

import io
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

import numpy as np
from PIL import Image

import facecodec
from edge_encoder.metrics import EdgeMetrics
from edge_encoder.tracker import FaceTracker
from facecodec.bitstream import CodedFace
from facecodec.codec.profiles import FaceCodec
from facecodec.frontend import WEB_FORMATS, FaceFrontEnd, decode_image
from facecodec.frontend.quality import FaceQuality, assess


@dataclass(frozen=True)
class EncodedFace:
    face_id: str
    camera_id: str
    captured_at: datetime
    box: tuple[float, float, float, float]
    score: float
    coded: CodedFace  # base layer, plus every enhancement layer when coding is eager
    quality: FaceQuality
    levels: int = 0  # enhancement levels this face can be viewed at (coded, or codable from `source`)
    track_id: str = ""  # the camera's track (one person in view) this face updates
    source: bytes | None = None  # deferred coding: the aligned crop as lossless WebP

    @cached_property  # read for the store, the outbox record, metrics and the reply: serialise once
    def base_container(self) -> bytes:
        return self.coded.base_only().to_bytes()

    @property
    def full_container(self) -> bytes:
        return self.coded.to_bytes()


class TooManyCameras(RuntimeError):
    """A frame from a camera beyond the edge's bound: per-camera state (tracks, order, metrics) must not
    grow with whatever camera ids clients invent."""


@dataclass(frozen=True)
class FrameResult:
    captured_at: datetime
    faces: list[EncodedFace]  # the faces coded for uplink
    detected: int  # faces found, including those of people already uplinked (tracked)


def lossless(crop: np.ndarray) -> bytes:
    """The crop as lossless WebP, fastest setting: ~17.5 KB for 112x112 in ~0.4 ms here (method 4: 15.7 KB
    in ~7 ms, as long as coding every enhancement level; PNG: ~24 KB), decoded in ~0.3 ms."""
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="WEBP", lossless=True, method=0)
    return buffer.getvalue()


class EncodePipeline:
    """`deferred` enhancement coding keeps each crop and leaves the layers to the first fetch (most
    faces are never viewed; coding all five levels costs about as much as the recogniser and base
    layer together, `bench/edge_encode_cost.py`); `eager` codes `levels` layers at capture."""

    def __init__(self, codec: FaceCodec, levels: int | None, front_end: FaceFrontEnd | None = None,
                 deferred: bool = True, tracker: FaceTracker | None = None,
                 metrics: EdgeMetrics | None = None, workers: int = 1, max_cameras: int = 256) -> None:
        self.codec = codec
        self.levels = codec.levels if levels is None else min(levels, codec.levels)
        self.deferred = deferred
        self.tracker = tracker  # None: every detection is coded and uplinked
        self.metrics = metrics or EdgeMetrics()
        self.front_end = front_end or FaceFrontEnd()
        # onnxruntime sessions are thread-safe: up to `workers` frames run at once (one per core, each
        # session on cores / workers threads), but one camera's frames run one after another, in order.
        self._workers = threading.Semaphore(workers)
        self._cameras: dict[str, threading.Lock] = {}
        self.max_cameras = max_cameras
        self._lock = threading.Lock()  # the tracker's state and the camera locks

    def camera_counts(self) -> dict[str, dict[str, int]]:
        """Per camera: faces detected, faces uplinked, tracks opened (people), tracks open now."""
        if self.tracker is None:
            return {}
        with self._lock:
            return {camera: {"detected": c.detected, "uplinked": c.uplinked, "tracks_opened": c.tracks_opened,
                             "tracks_open": self.tracker.open_tracks(camera)}
                    for camera, c in self.tracker.counts.items()}

    def encode_frame(self, camera_id: str, frame: bytes, captured_at: datetime | None = None) -> FrameResult:
        """Decode the frame (ImageDecodeError if it is not a JPEG, PNG or WebP image, or too large) and code
        every face in it that the tracker uplinks (all of them without a tracker)."""
        with self.metrics.stage("decode"):
            rgb = decode_image(frame, WEB_FORMATS)
        captured_at = captured_at or datetime.now(UTC)
        with self._lock:
            if camera_id not in self._cameras and len(self._cameras) >= self.max_cameras:
                raise TooManyCameras(f"this edge serves at most {self.max_cameras} cameras (EDGE_MAX_CAMERAS)")
            camera_lock = self._cameras.setdefault(camera_id, threading.Lock())
        with camera_lock, self._workers:
            with self.metrics.stage("detect_align"):
                faces = self.front_end.faces(rgb)
            if not faces:
                return FrameResult(captured_at, [], 0)
            with self.metrics.stage("describe"):
                descriptors = self.front_end.describe(np.stack([f.crop for f in faces]))
            with self.metrics.stage("track"):
                qualities = [assess(f.detection.box, f.landmarks, f.crop) for f in faces]
                if self.tracker is None:
                    tracks = [("", True)] * len(faces)
                else:
                    with self._lock:
                        assigned = self.tracker.assign(camera_id, captured_at, [f.detection.box for f in faces],
                                                       descriptors, qualities)
                    tracks = [(a.track_id, a.uplink) for a in assigned]
            with self.metrics.stage("code"):
                coded = [
                    EncodedFace(
                        face_id=uuid.uuid4().hex,
                        camera_id=camera_id,
                        captured_at=captured_at,
                        box=face.detection.box,
                        score=face.detection.score,
                        coded=self.codec.encode_base(descriptor) if self.deferred
                        else self.codec.encode(face.crop, descriptor, self.levels),
                        quality=quality,
                        levels=self.levels,
                        track_id=track_id,
                        source=lossless(face.crop) if self.deferred and self.levels else None,
                    )
                    for face, descriptor, quality, (track_id, uplink) in zip(faces, descriptors, qualities, tracks)
                    if uplink
                ]
            return FrameResult(captured_at, coded, len(faces))


CODEC_VERSION = facecodec.__version__
