"""Edge REST API: cameras post frames here."""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from facecoding.v1 import ingest_pb2
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.fetch_service import make_server
from edge_encoder.frame_service import FrameIngestService
from edge_encoder.metrics import EdgeMetrics
from edge_encoder.outbox import Outbox
from edge_encoder.pipeline import CODEC_VERSION, EncodedFace, EncodePipeline, FrameResult, TooManyCameras
from edge_encoder.retention import EdgeRetention
from edge_encoder.settings import EdgeSettings
from edge_encoder.tracker import FaceTracker
from edge_encoder.uploader import Uploader
from facecodec.access.camera_tokens import CameraTokens
from facecodec.capture_time import CaptureTimeError, CaptureWindow
from facecodec.codec.profiles import FaceCodec, codec_by_name
from facecodec.frontend import FaceFrontEnd, ImageDecodeError, ImageTooLarge, UnsupportedImageFormat
from service_web.http import harden

log = logging.getLogger(__name__)
CAMERA_ID = r"^[A-Za-z0-9_.-]{1,64}$"
IMAGE_TYPES = {"image/jpeg", "image/png", "image/webp", "application/octet-stream"}
MULTIPART_SLACK = 64 * 1024  # form boundaries and part headers around a frame of max_frame_bytes


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
    return 400


@dataclass
class EdgeNode:
    settings: EdgeSettings
    pipeline: EncodePipeline
    outbox: Outbox
    store: EnhancementStore
    uploader: Uploader
    metrics: EdgeMetrics

    @property
    def capture_window(self) -> CaptureWindow:
        return CaptureWindow(self.settings.capture_max_future_s, self.settings.capture_max_age_s)

    def ingest_frame(self, camera_id: str, frame: bytes, captured_at: datetime | None) -> FrameResult:
        """One frame through the pipeline and into the stores, counted. CaptureTimeError (checked before
        anything is decoded or stored), ImageDecodeError and TooManyCameras are counted as refused and
        re-raised for the caller's protocol to answer."""
        try:
            if captured_at is not None:
                captured_at = self.capture_window.check(captured_at)
            result = self.pipeline.encode_frame(camera_id, frame, captured_at)
        except (CaptureTimeError, ImageDecodeError, TooManyCameras) as exc:
            self.metrics.frames_rejected.labels(str(frame_error_status(exc))).inc()
            raise
        self.metrics.frames.labels(camera_id).inc()  # counted once accepted: labels stay bounded too
        self.metrics.faces_detected.labels(camera_id).inc(result.detected)
        self.accept(result.faces)
        return result

    def accept(self, faces: list[EncodedFace]) -> None:
        """Keep the enhancement layers first, then queue the base layers: the cloud never learns of a
        face whose pixels the edge cannot serve."""
        with self.metrics.stage("store"):
            for face in faces:
                self.store.put(face.face_id, face.full_container, face.levels, face.source)
                self.outbox.put(face.face_id, self.record(face).SerializeToString())
        for face in faces:
            self.metrics.faces_uplinked.labels(face.camera_id).inc()
            self.metrics.uplink_bytes.inc(len(face.base_container))
            for issue in face.quality.issues:
                self.metrics.faces_gated.labels(face.camera_id, issue).inc()

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
            quality=ingest_pb2.FaceQuality(face_width_px=face.quality.face_width_px,
                                           sharpness=face.quality.sharpness, yaw=face.quality.yaw,
                                           issues=list(face.quality.issues)),
        )


class FaceOut(BaseModel):
    face_id: str
    track_id: str = Field("", description="the person-in-view track this face updates (empty: tracking off)")
    bbox: tuple[float, float, float, float]
    score: float
    base_layer_bytes: int
    enhancement_bytes: int
    enhancement_levels: int
    quality_issues: list[str]


class FrameOut(BaseModel):
    camera_id: str
    captured_at: datetime
    faces_detected: int = Field(description="faces found in the frame, including people already uplinked")
    faces: list[FaceOut] = Field(description="the faces coded and uplinked: new people and clearly better faces")


def get_node(request: Request) -> EdgeNode:
    return request.app.state.node


# Module level: with postponed annotations FastAPI resolves dependency aliases from module globals.
Node = Annotated[EdgeNode, Depends(get_node)]


def make_tracker(codec: FaceCodec, timeout_s: float) -> FaceTracker:
    """Link thresholds from the base layer's impostor tail: the analyzer links a person's faces at pair
    FAR 1e-4; with overlapping boxes, FAR 1e-2 is enough."""
    tail = codec.open_set_calibration.tail(1, 1)
    return FaceTracker(link=tail.threshold_at(1e-4), near=tail.threshold_at(1e-2), timeout_s=timeout_s)


def build_node(settings: EdgeSettings) -> EdgeNode:
    cores = os.cpu_count() or 1
    workers = settings.workers or cores
    # Sessions open below: with several frames at once, each gets cores / workers threads, not all cores.
    os.environ.setdefault("FACECODEC_ORT_THREADS", str(max(1, cores // workers)))
    codec = codec_by_name(settings.codec_profile, settings.codec_rate)
    outbox = Outbox(settings.data_dir / "outbox.sqlite3")
    metrics = EdgeMetrics()
    node = EdgeNode(
        settings=settings,
        pipeline=EncodePipeline(codec, settings.enhancement_levels, FaceFrontEnd(tiling=settings.detect_tiling,
                                                                                  detector=settings.detect_model,
                                                                                  max_side=settings.detect_max_side),
                                deferred=settings.enhancement_coding == "deferred",
                                tracker=make_tracker(codec, settings.track_timeout_s) if settings.tracking else None,
                                metrics=metrics, workers=workers, max_cameras=settings.max_cameras),
        outbox=outbox,
        store=EnhancementStore(
            settings.data_dir / "enhancement.sqlite3", settings.enhancement_max_faces, settings.enhancement_max_bytes
        ),
        uploader=Uploader(
            outbox, settings.cloud_ingest_address, settings.upload_batch, settings.upload_timeout_s,
            settings.upload_retry_max_s, settings.upload_stall_s, settings.tls, settings.cloud_server_name,
        ),
        metrics=metrics,
    )
    metrics.watch(lambda: {
        "outbox_pending": len(node.outbox), "outbox_rejected": node.outbox.rejected_count(),
        "uploaded_acked": node.uploader.acked, "outbox_quarantined": node.uploader.quarantined,
        "upload_errors": node.uploader.errors, **{f"enhancement_store_{k}": v for k, v in node.store.stats().items()},
    })
    return node


def create_app(settings: EdgeSettings | None = None) -> FastAPI:
    settings = settings or EdgeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        node = build_node(settings)
        frames = FrameIngestService(node.ingest_frame, node.metrics, settings.max_frame_bytes, tokens)
        server, port = make_server(node.store, settings.grpc_port, settings.grpc_host, metrics=node.metrics,
                                   frames=frames, outbox=node.outbox, tls=settings.tls,
                                   callers=settings.cloud_names)
        server.start()
        node.uploader.start()
        retention = EdgeRetention(node.store, node.outbox, settings.retention_s, settings.retention_interval_s)
        retention.start()
        app.state.node = node
        log.info("edge %s: fetch service on :%d, uploading to %s (%s)", settings.edge_id, port,
                 settings.cloud_ingest_address, "mutual TLS" if settings.tls else "plaintext")
        if settings.tls is None:
            log.warning("gRPC is plaintext: set EDGE_TLS_* files outside loopback development")
        yield
        retention.stop()
        node.uploader.stop()
        server.stop(grace=2).wait()
        node.outbox.close()
        node.store.close()

    app = FastAPI(title="facecodec edge encoder", version=CODEC_VERSION, lifespan=lifespan)
    tokens = CameraTokens(settings.tokens_path) if settings.camera_auth == "tokens" else None
    if tokens is None:
        log.warning("camera authentication is OFF (EDGE_CAMERA_AUTH=off): anyone reaching this port posts frames")
    harden(app, settings.max_frame_bytes + MULTIPART_SLACK, log)

    @app.get("/healthz")
    def healthz(node: Node) -> dict:
        uploads = node.uploader.health()
        return {
            "status": "degraded" if uploads["stalled"] else "ok",
            "uploads": uploads,
            "edge_id": settings.edge_id,
            "codec": node.pipeline.codec.spec.name,
            "outbox_pending": len(node.outbox),
            "outbox_rejected": node.outbox.rejected_count(),
            "uploaded": node.uploader.acked,
            "upload_error": node.uploader.last_error,
            "enhancement_store": node.store.stats(),
            "cameras": node.pipeline.camera_counts(),
        }

    if settings.metrics_enabled:
        @app.get("/metrics", response_class=PlainTextResponse)
        def metrics(node: Node) -> PlainTextResponse:
            return PlainTextResponse(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    in_flight = 0  # frames being read, coded or stored; one event loop, so a plain counter is exact

    @app.get("/readyz", responses={503: {"description": "not ready: see which check failed"}})
    def readyz(node: Node) -> JSONResponse:
        """Ready to take frames: models loaded (the node exists only after they are), both stores
        writable, and frames in flight below EDGE_MAX_FRAMES_IN_FLIGHT. /healthz only says it runs."""
        checks = {"models_loaded": True, "outbox_writable": node.outbox.writable(),
                  "enhancement_store_writable": node.store.writable(),
                  "uploads_flowing": not node.uploader.health()["stalled"],
                  "not_saturated": in_flight < settings.max_frames_in_flight}
        return JSONResponse({"ready": all(checks.values()), "checks": checks},
                            status_code=200 if all(checks.values()) else 503)

    @app.post("/v1/cameras/{camera_id}/frames", status_code=201, response_model=FrameOut,
              responses={401: {"description": "camera token missing or wrong"},
                         429: {"description": "the edge is saturated; retry after the Retry-After seconds"}})
    async def post_frame(
        request: Request,
        node: Node,
        camera_id: Annotated[str, Path(pattern=CAMERA_ID)],
        captured_at: Annotated[datetime | None, Query(description="capture time (ISO 8601); default now")] = None,
    ) -> FrameOut:
        nonlocal in_flight
        if tokens is not None:
            if not tokens.allows(camera_id, _bearer(request.headers.get("authorization", ""))):
                node.metrics.frames_rejected.labels("401").inc()
                raise HTTPException(401, "camera token missing or wrong (Authorization: Bearer <camera token>)",
                                    headers={"WWW-Authenticate": "Bearer"})
        if captured_at is not None:  # before the body is read: nothing decoded or stored for a bad time
            try:
                captured_at = node.capture_window.check(captured_at)
            except CaptureTimeError as exc:
                node.metrics.frames_rejected.labels("422").inc()
                raise HTTPException(422, str(exc)) from exc
        if in_flight >= settings.max_frames_in_flight:
            node.metrics.frames_rejected.labels("429").inc()
            raise HTTPException(429, f"edge saturated: {in_flight} frames in flight; retry shortly",
                                headers={"Retry-After": "1"})
        in_flight += 1
        try:
            return await _encode_frame(node, request, camera_id, captured_at)
        finally:
            in_flight -= 1

    async def _encode_frame(node: EdgeNode, request: Request, camera_id: str,
                            captured_at: datetime | None) -> FrameOut:
        try:
            frame = await _read_frame(request, settings.max_frame_bytes)
        except HTTPException as exc:
            node.metrics.frames_rejected.labels(str(exc.status_code)).inc()
            raise
        try:
            result = await run_in_threadpool(node.ingest_frame, camera_id, frame, captured_at)
        except (CaptureTimeError, ImageDecodeError, TooManyCameras) as exc:
            raise HTTPException(frame_error_status(exc), str(exc)) from exc
        faces = result.faces
        return FrameOut(
            camera_id=camera_id,
            captured_at=result.captured_at,
            faces_detected=result.detected,
            faces=[
                FaceOut(
                    face_id=f.face_id,
                    track_id=f.track_id,
                    bbox=f.box,
                    score=f.score,
                    base_layer_bytes=len(f.base_container),
                    enhancement_bytes=sum(len(e.payload) for e in f.coded.enhancements),
                    enhancement_levels=f.levels,
                    quality_issues=list(f.quality.issues),
                )
                for f in faces
            ],
        )

    return app


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _read_frame(request: Request, limit: int) -> bytes:
    """The frame from a raw image body or from the first file of a multipart form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit:
        raise HTTPException(413, f"frame larger than {limit} bytes")
    if content_type == "multipart/form-data":
        form = await request.form()
        files = [v for v in form.values() if hasattr(v, "read")]
        if not files:
            raise HTTPException(400, "multipart body has no file part")
        data = await files[0].read()
    elif content_type in IMAGE_TYPES or not content_type:
        data = await request.body()
    else:
        raise HTTPException(415, f"unsupported content type {content_type!r}; send image/jpeg, image/png or multipart")
    if len(data) > limit:
        raise HTTPException(413, f"frame larger than {limit} bytes")
    if not data:
        raise HTTPException(400, "empty body: post a JPEG or PNG frame")
    return data
