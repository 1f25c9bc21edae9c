"""Frame -> faces -> coded faces: the edge's whole analysis path, independent of HTTP and gRPC."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

import numpy as np
from PIL import Image

import facecodec
from edge_encoder.metrics import EdgeMetrics
from edge_encoder.snapshots import scene_snapshot
from edge_encoder.tracker import ClosedTrack, FaceTracker
from facecodec.bitstream import CodedFace
from facecodec.codec.profiles import FaceCodec
from facecodec.frontend import WEB_FORMATS, AlignedFace, FaceFrontEnd, decode_image
from facecodec.frontend.motion import MotionGate
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
    snapshot: bytes | None = None  # cameras that opt in: the scene around the face, JPEG (snapshots.py)

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
    camera_id: str
    captured_at: datetime
    faces: list[EncodedFace]  # the faces coded for uplink
    detected: int  # faces found, uplinked or withheld
    withheld: dict[str, int] = field(default_factory=dict)  # faces not uplinked, by reason (a gate, or tracked)


@dataclass
class AnalysedFrame:
    """What the per-frame stages found: faces aligned and assessed, described later (in a batch)."""

    faces: list[AlignedFace]
    qualities: list[FaceQuality]
    descriptors: np.ndarray | None = None
    image: np.ndarray | None = None  # the decoded frame, kept only for cameras with scene snapshots


@dataclass(frozen=True)
class QualityGate:
    """Faces below either bound are not coded or uplinked (counted per reason): too small to be worth a
    base layer, or too poor (FaceQuality.score) to be recognised. 0 lets every face through."""

    min_face_px: float = 0.0
    min_quality: float = 0.0

    def reason(self, quality: FaceQuality) -> str | None:
        if quality.face_width_px < self.min_face_px:
            return "below_min_face_px"
        if quality.score < self.min_quality:
            return "below_min_quality"
        return None


def lossless(crop: np.ndarray) -> bytes:
    """The crop as lossless WebP, fastest setting: ~17.5 KB for 112x112 in ~0.4 ms here (method 4: 15.7 KB
    in ~7 ms, as long as coding every enhancement level; PNG: ~24 KB), decoded in ~0.3 ms."""
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="WEBP", lossless=True, method=0)
    return buffer.getvalue()


class EncodePipeline:
    """The edge's stages for one frame: `analyse` (decode, detect, align, assess), `describe` (the
    recogniser, on the faces of one or several frames at once), `commit` (gate, track, code). Running
    them concurrently, in order per camera, is `edge_encoder.stages.FrameStages`'s job; `encode_frame`
    runs them one after another.

    `deferred` enhancement coding keeps each crop and leaves the layers to the first fetch (most
    faces are never viewed; coding all five levels costs about as much as the recogniser and base
    layer together, `bench/edge_encode_cost.py`); `eager` codes `levels` layers at capture."""

    def __init__(self, codec: FaceCodec, levels: int | None, front_end: FaceFrontEnd | None = None,
                 deferred: bool = True, tracker: FaceTracker | None = None,
                 metrics: EdgeMetrics | None = None, max_cameras: int = 256,
                 gate: QualityGate | None = None, motion_gate: Callable[[], MotionGate] | None = None,
                 snapshot_for: Callable[[str], bool] | None = None) -> None:
        self.codec = codec
        self.levels = codec.levels if levels is None else min(levels, codec.levels)
        self.deferred = deferred
        self.tracker = tracker  # None: every detection is coded and uplinked
        self.metrics = metrics or EdgeMetrics()
        self.front_end = front_end or FaceFrontEnd()
        self.gate = gate or QualityGate()
        self.max_cameras = max_cameras
        self.motion_gate = motion_gate  # None: every frame searched whole; else one gate per camera
        self.snapshot_for = snapshot_for or (lambda camera_id: False)  # camera id -> keep scene snapshots?
        self._motion: dict[str, MotionGate] = {}
        self._cameras: set[str] = set()
        self._lock = threading.Lock()  # the tracker's state and the camera set

    def admit_camera(self, camera_id: str) -> None:
        """TooManyCameras for a camera beyond the bound; known cameras are always admitted."""
        with self._lock:
            if camera_id not in self._cameras:
                if len(self._cameras) >= self.max_cameras:
                    raise TooManyCameras(f"this edge serves at most {self.max_cameras} cameras (EDGE_MAX_CAMERAS)")
                self._cameras.add(camera_id)

    def camera_counts(self) -> dict[str, dict[str, int]]:
        """Per camera: faces detected, faces uplinked, tracks opened (people), tracks open now."""
        if self.tracker is None:
            return {}
        with self._lock:
            return {camera: {"detected": c.detected, "uplinked": c.uplinked, "tracks_opened": c.tracks_opened,
                             "tracks_open": self.tracker.open_tracks(camera)}
                    for camera, c in self.tracker.counts.items()}

    def close_tracks(self, everything: bool = False) -> list[ClosedTrack]:
        """Tracks ended since the last call (their camera's capture clock moved on, or the edge's clock
        did while the camera sent nothing); `everything`: every open track too (the edge is stopping)."""
        if self.tracker is None:
            return []
        with self._lock:
            self.tracker.expire(now=float("inf") if everything else None)
            return self.tracker.closed()

    def open_tracks(self) -> list[ClosedTrack]:
        """Every track whose closing notice has not been handed out (copies), as it stands now."""
        if self.tracker is None:
            return []
        with self._lock:
            return self.tracker.still_open()

    def analyse(self, frame: bytes | np.ndarray, camera_id: str = "") -> AnalysedFrame:
        """Decode (ImageDecodeError if `frame` is bytes but not a JPEG, PNG or WebP image, or too large;
        an RGB array from a video source is used as it is), detect, align and assess every face: in
        the whole frame, or with a motion gate only where the camera's view changed or its tracked
        people are."""
        if isinstance(frame, np.ndarray):
            rgb = frame
        else:
            with self.metrics.stage("decode"):
                rgb = decode_image(frame, WEB_FORMATS)
        with self.metrics.stage("detect_align"):
            regions = self._regions(camera_id, rgb)
            faces = self.front_end.faces(rgb, regions)
            qualities = [assess(f.detection.box, f.landmarks, f.crop) for f in faces]
        keep = faces and self.snapshot_for(camera_id)  # the frame stays in memory only where it is needed
        return AnalysedFrame(faces, qualities, image=rgb if keep else None)

    def _regions(self, camera_id: str, rgb: np.ndarray) -> list[tuple[float, float, float, float]] | None:
        if self.motion_gate is None or not camera_id:
            return None
        with self._lock:
            gate = self._motion.setdefault(camera_id, self.motion_gate())
            keep = self.tracker.boxes(camera_id) if self.tracker is not None else []
        regions = gate.regions(rgb, keep)
        searched = 1.0 if regions is None else sum((b[2] - b[0]) * (b[3] - b[1]) for b in regions) / rgb[..., 0].size
        self.metrics.detect_searched_share.observe(searched)
        return regions

    def describe(self, crops: np.ndarray) -> np.ndarray:
        with self.metrics.stage("describe"):
            return self.front_end.describe(crops)

    def commit(self, camera_id: str, captured_at: datetime, frame: AnalysedFrame) -> FrameResult:
        """Gate, track and code one described frame. Frames of one camera must be committed in order:
        the tracker links each to the frames before it."""
        if not frame.faces:
            return FrameResult(camera_id, captured_at, [], 0)
        withheld: dict[str, int] = {}
        kept = []
        for face, quality, descriptor in zip(frame.faces, frame.qualities, frame.descriptors):
            reason = self.gate.reason(quality)
            if reason is None:
                kept.append((face, quality, descriptor))
            else:
                withheld[reason] = withheld.get(reason, 0) + 1
        with self.metrics.stage("track"):
            if self.tracker is None:
                tracks = [("", True)] * len(kept)
            else:
                with self._lock:
                    assigned = self.tracker.assign(camera_id, captured_at, [f.detection.box for f, _, _ in kept],
                                                   np.array([d for _, _, d in kept]), [q for _, q, _ in kept])
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
                    snapshot=None if frame.image is None else scene_snapshot(frame.image, face.detection.box),
                )
                for (face, quality, descriptor), (track_id, uplink) in zip(kept, tracks)
                if uplink
            ]
        if len(kept) > len(coded):
            withheld["tracked"] = len(kept) - len(coded)
        return FrameResult(camera_id, captured_at, coded, len(frame.faces), withheld)

    def encode_frame(self, camera_id: str, frame: bytes | np.ndarray,
                     captured_at: datetime | None = None) -> FrameResult:
        """Every stage, one after another, on the caller's thread (callers keep one camera's frames in
        order themselves)."""
        self.admit_camera(camera_id)
        captured_at = captured_at or datetime.now(UTC)
        analysed = self.analyse(frame, camera_id)
        if analysed.faces:
            analysed.descriptors = self.describe(np.stack([f.crop for f in analysed.faces]))
        return self.commit(camera_id, captured_at, analysed)


CODEC_VERSION = facecodec.__version__
