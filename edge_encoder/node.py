"""The edge node: its models, stages, stores, uploader and video sources, independent of HTTP and gRPC."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import numpy as np
from facecoding.v1 import ingest_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from edge_encoder.cameras import Cameras
from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.metrics import EdgeMetrics
from edge_encoder.outbox import Outbox
from edge_encoder.pipeline import (
    CODEC_VERSION,
    EncodedFace,
    EncodePipeline,
    FrameResult,
    QualityGate,
    TooManyCameras,
)
from edge_encoder.settings import EdgeSettings
from edge_encoder.sources import VideoSource
from edge_encoder.stages import FrameDropped, FrameStages, Saturated, ShuttingDown
from edge_encoder.tracker import ClosedTrack, FaceTracker
from edge_encoder.uploader import Uploader
from facecodec.codec.profiles import FaceCodec, codec_by_name
from facecodec.frontend import FaceFrontEnd, ImageDecodeError, ImageTooLarge, UnsupportedImageFormat
from facecodec.frontend.motion import MotionGate
from service_common import request_id
from service_common.capture_time import CaptureTimeError, CaptureWindow

log = logging.getLogger(__name__)


def frame_error_status(exc: Exception) -> int:
    """The HTTP status (and refusal metric label) of a frame the edge will not take."""
    if isinstance(exc, CaptureTimeError):
        return 422
    if isinstance(exc, ImageTooLarge):
        return 413
    if isinstance(exc, UnsupportedImageFormat):
        return 415
    if isinstance(exc, TooManyCameras):
        return 403
    if isinstance(exc, Saturated):
        return 429
    if isinstance(exc, FrameDropped | ShuttingDown):
        return 503
    return 400


@dataclass
class EdgeNode:
    settings: EdgeSettings
    pipeline: EncodePipeline
    outbox: Outbox
    store: EnhancementStore
    uploader: Uploader
    metrics: EdgeMetrics
    cameras: Cameras = field(default_factory=Cameras)
    stages: FrameStages | None = None  # started with the node: build_node
    sources: dict[str, VideoSource] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _held: dict[str, bytes] = field(default_factory=dict)  # the closing notices last held for open tracks
    _closer: threading.Thread | None = None

    @property
    def capture_window(self) -> CaptureWindow:
        return CaptureWindow(self.settings.capture_max_future_s, self.settings.capture_max_age_s)

    def submit_frame(self, camera_id: str, frame: bytes | np.ndarray, captured_at: datetime | None,
                     wait_s: float = 0.0) -> Future[FrameResult]:
        """One frame into the stages; the future resolves once its faces are stored and queued. Refusals
        are counted by HTTP status and raised for the caller's protocol to answer: at once
        (CaptureTimeError, TooManyCameras, Saturated) or from the future (ImageDecodeError,
        FrameDropped)."""
        assert self.stages is not None, "the node's stages are not started"
        try:
            if captured_at is not None:
                captured_at = self.capture_window.check(captured_at)
            future = self.stages.submit(camera_id, frame, captured_at, self.cameras[camera_id].overflow, wait_s)
        except (CaptureTimeError, TooManyCameras, Saturated) as exc:
            self.metrics.frames_rejected.labels(str(frame_error_status(exc))).inc()
            raise
        future.add_done_callback(self._count_refused)
        return future

    def ingest_frame(self, camera_id: str, frame: bytes, captured_at: datetime | None,
                     wait_s: float = 0.0) -> FrameResult:
        """submit_frame, waiting for the result."""
        return self.submit_frame(camera_id, frame, captured_at, wait_s).result()

    def _count_refused(self, future: Future[FrameResult]) -> None:
        exc = future.exception()
        if isinstance(exc, ImageDecodeError):
            self.metrics.frames_rejected.labels(str(frame_error_status(exc))).inc()

    def accept(self, result: FrameResult) -> None:
        """The stages' sink, in each camera's frame order: keep the enhancement layers first, then queue
        the base layers (the cloud never learns of a face whose pixels the edge cannot serve); count."""
        camera = result.camera_id
        if result.faces:
            with self.metrics.stage("store"):
                self.store.put_many([(f.face_id, f.full_container, f.levels, f.source, f.snapshot)
                                     for f in result.faces])
                self.outbox.put_many([(f.face_id, self.record(f).SerializeToString()) for f in result.faces])
        self.metrics.frames.labels(camera).inc()  # counted once accepted: labels stay bounded too
        self.metrics.faces_detected.labels(camera).inc(result.detected)
        for reason, count in result.withheld.items():
            self.metrics.faces_withheld.labels(camera, reason).inc(count)
        for face in result.faces:
            self.metrics.faces_uplinked.labels(camera).inc()
            self.metrics.uplink_bytes.inc(len(face.base_container))
            for issue in face.quality.issues:
                self.metrics.faces_gated.labels(camera, issue).inc()

    def start(self) -> None:
        recovered = self.outbox.recover_open()
        if recovered:
            log.warning("queued the closing notices of %d tracks left open by an unclean stop", recovered)
        self.stages = FrameStages(self.pipeline, self.accept, workers=self.settings.workers or os.cpu_count() or 1,
                                  max_in_flight=self.settings.max_frames_in_flight,
                                  batch_faces=self.settings.describe_batch_faces, metrics=self.metrics).start()
        self.metrics.watch(self.stages.depths)
        self._closer = threading.Thread(target=self._close_tracks_loop, name="track-closer", daemon=True)
        self._closer.start()
        for camera_id, config in self.cameras.sources().items():
            self.sources[camera_id] = VideoSource(camera_id, config, self.submit_frame, self.metrics,
                                                  self.settings.upload_retry_max_s).start()

    def close_tracks(self, everything: bool = False) -> int:
        """Queue a TrackClosed notice for every track that ended (after its faces, in upload order);
        `everything`: for the open ones too, as the edge stops (the outbox keeps them for the next run)."""
        closed = [c for c in self.pipeline.close_tracks(everything) if c.track.uplinks]
        for c in closed:
            self.outbox.put(f"track-{c.track.track_id}", self.track_record(c).SerializeToString())
            self.metrics.tracks_closed.labels(c.camera_id).inc()
        return len(closed)

    def hold_open_tracks(self) -> None:
        """Keep aside the notice each open track would get if it closed now, for a crash to leave behind
        (`Outbox.recover_open`); written only when it changed. After `close_tracks`, so that a track is
        always held or queued: one closed since is still held until its notice is queued."""
        held = {f"track-{c.track.track_id}": self.track_record(c).SerializeToString()
                for c in self.pipeline.open_tracks() if c.track.uplinks}
        if held != self._held:
            self.outbox.hold_open(list(held.items()))
            self._held = held

    def _close_tracks_loop(self) -> None:
        while not self._stopping.wait(0.5):
            try:
                self.close_tracks()
                self.hold_open_tracks()
            except Exception:  # noqa: BLE001 - a full disk must not end the loop; the next round retries
                log.exception("could not queue closed tracks")

    def track_record(self, closed: ClosedTrack) -> ingest_pb2.FaceRecord:
        track = closed.track
        first, last = Timestamp(), Timestamp()
        first.FromDatetime(track.first_seen)
        last.FromDatetime(track.last_seen)
        return ingest_pb2.FaceRecord(
            face_id=f"track-{track.track_id}", camera_id=closed.camera_id, captured_at=last,
            edge_id=self.settings.edge_id, edge_address=self.settings.fetch_address, codec_version=CODEC_VERSION,
            track_id=track.track_id,
            track_closed=ingest_pb2.TrackClosed(first_seen=first, last_seen=last, faces_seen=track.faces,
                                                faces_uplinked=track.uplinks))

    def stop(self) -> None:
        self._stopping.set()
        for source in self.sources.values():
            source.stop()
        if self.stages is not None:
            self.stages.stop()
        if self._closer is not None:  # its last round must not hold copies of the notices queued below
            self._closer.join(timeout=5.0)
        try:  # a clean stop ends every open stay now, so the cloud's tracks are not left open
            self.close_tracks(everything=True)
        except Exception:  # noqa: BLE001 - stopping goes on
            log.exception("could not queue the open tracks' closing notices")

    def record(self, face: EncodedFace) -> ingest_pb2.FaceRecord:
        captured = Timestamp()
        captured.FromDatetime(face.captured_at)
        x1, y1, x2, y2 = face.box
        return ingest_pb2.FaceRecord(
            face_id=face.face_id,
            camera_id=face.camera_id,
            captured_at=captured,
            bbox=ingest_pb2.BoundingBox(x1=x1, y1=y1, x2=x2, y2=y2),
            detection_score=face.score,
            model_id=face.coded.model_id,
            rate_id=face.coded.rate_id,
            codec_version=CODEC_VERSION,
            base_layer=face.base_container,
            edge_id=self.settings.edge_id,
            edge_address=self.settings.fetch_address,
            enhancement_levels=face.levels,
            track_id=face.track_id,
            request_id=request_id.current() or "",  # the frame's REST call, bound while it is committed
            quality=ingest_pb2.FaceQuality(face_width_px=face.quality.face_width_px,
                                           sharpness=face.quality.sharpness, yaw=face.quality.yaw,
                                           issues=list(face.quality.issues), score=face.quality.score),
        )


def make_tracker(codec: FaceCodec, timeout_s: float) -> FaceTracker:
    """Link thresholds from the base layer's impostor tail: the analyzer links a person's faces at pair
    FAR 1e-4; with overlapping boxes, FAR 1e-2 is enough."""
    tail = codec.open_set_calibration.tail(1, 1)
    return FaceTracker(link=tail.threshold_at(1e-4), near=tail.threshold_at(1e-2), timeout_s=timeout_s)


def build_node(settings: EdgeSettings) -> EdgeNode:
    """The node with its models loaded and stores open; `start()` starts its stages and sources."""
    cameras = Cameras.load(settings.cameras_file)
    cores = os.cpu_count() or 1
    workers = settings.workers or cores
    # Sessions open below: with several frames at once, each gets cores / workers threads, not all cores.
    os.environ.setdefault("FACECODEC_ORT_THREADS", str(max(1, cores // workers)))
    codec = codec_by_name(settings.codec_profile, settings.codec_rate)
    outbox = Outbox(settings.data_dir / "outbox.sqlite3")
    metrics = EdgeMetrics()
    node = EdgeNode(
        settings=settings,
        pipeline=EncodePipeline(codec, settings.enhancement_levels,
                                FaceFrontEnd(tiling=settings.detect_tiling, detector=settings.detect_model,
                                             max_side=settings.detect_max_side),
                                deferred=settings.enhancement_coding == "deferred",
                                tracker=make_tracker(codec, settings.track_timeout_s) if settings.tracking else None,
                                metrics=metrics, max_cameras=settings.max_cameras,
                                gate=QualityGate(settings.min_face_px, settings.min_quality),
                                motion_gate=partial(MotionGate, refresh_s=settings.detect_refresh_s)
                                if settings.detect_motion_gate else None,
                                snapshot_for=lambda camera_id: cameras[camera_id].snapshot),
        outbox=outbox,
        store=EnhancementStore(
            settings.data_dir / "enhancement.sqlite3", settings.enhancement_max_faces, settings.enhancement_max_bytes
        ),
        uploader=Uploader(
            outbox, settings.cloud_ingest_address, settings.upload_batch, settings.upload_timeout_s,
            settings.upload_retry_max_s, settings.upload_stall_s, settings.tls, settings.cloud_server_name,
        ),
        metrics=metrics,
        cameras=cameras,
    )
    metrics.watch(lambda: {
        "outbox_pending": len(node.outbox), "outbox_rejected": node.outbox.rejected_count(),
        "uploaded_acked": node.uploader.acked, "outbox_quarantined": node.uploader.quarantined,
        "upload_errors": node.uploader.errors, **{f"enhancement_store_{k}": v for k, v in node.store.stats().items()},
    })
    return node


