"""Edge REST API: cameras post frames here.

Open: `/healthz` (status only: ok or degraded), `/readyz` (which readiness check fails) and the camera
endpoint (camera tokens). Behind the admin token (edge_encoder/admin.py): `/v1/status` (camera ids,
head counts, upload errors, ...), `/metrics`, `/docs`, `/openapi.json` and `/v1/encode` (a photo's face
as a `.fcb` file, edge_encoder/face_files.py).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from edge_encoder.admin import AdminAuth, bearer, load_admin_token
from edge_encoder.face_files import encode_routes
from edge_encoder.fetch_service import make_server
from edge_encoder.frame_service import FrameIngestService
from edge_encoder.frame_streams import FrameStreams
from edge_encoder.node import EdgeNode, build_node, frame_error_status
from edge_encoder.pipeline import CODEC_VERSION, TooManyCameras
from edge_encoder.retention import EdgeRetention
from edge_encoder.settings import EdgeSettings
from edge_encoder.stages import FrameDropped, Saturated, ShuttingDown
from facecodec.frontend import ImageDecodeError
from facecodec.frontend.runtime import chosen_levels
from service_common.access.camera_tokens import CameraTokens
from service_common.capture_time import CaptureTimeError
from service_common.http import harden
from service_common.ids import ID_PATTERN
from service_common.request_id import with_request_ids

log = logging.getLogger(__name__)
IMAGE_TYPES = {"image/jpeg", "image/png", "image/webp", "application/octet-stream"}
MULTIPART_SLACK = 64 * 1024  # form boundaries and part headers around a frame of max_frame_bytes
_BINARY = {"schema": {"type": "string", "format": "binary"}}
# The frame route reads its body itself (streamed, limited, raw or multipart), so FastAPI cannot see it:
# declared here, so that generated clients can send a frame.
FRAME_BODY = {
    "required": True,
    "description": "one frame: the image bytes as the body (JPEG, PNG or WebP), or a multipart form whose "
                   "first file part (`image`) is the image",
    "content": {
        **{media: _BINARY for media in sorted(IMAGE_TYPES)},
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                           "properties": {"image": {"type": "string", "format": "binary"}}}},
    },
}


class FaceOut(BaseModel):
    face_id: str
    track_id: str = Field("", description="the person-in-view track this face updates (empty: tracking off)")
    bbox: tuple[float, float, float, float]
    score: float
    base_layer_bytes: int
    enhancement_bytes: int
    enhancement_levels: int
    quality_issues: list[str]
    quality_score: float = Field(description="0-1: size, sharpness and head turn together (FaceQuality.score)")


class FrameOut(BaseModel):
    camera_id: str
    captured_at: datetime
    faces_detected: int = Field(description="faces found in the frame, including people already uplinked")
    faces_withheld: dict[str, int] = Field(
        default_factory=dict, description="faces found but not uplinked, by reason: below_min_face_px, "
        "below_min_quality (EDGE_MIN_FACE_PX, EDGE_MIN_QUALITY), tracked (a person already uplinked)")
    faces: list[FaceOut] = Field(description="the faces coded and uplinked: new people and clearly better faces")


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool] = Field(description="each readiness check: true when it passes")


def get_node(request: Request) -> EdgeNode:
    return request.app.state.node


# Module level: with postponed annotations FastAPI resolves dependency aliases from module globals.
Node = Annotated[EdgeNode, Depends(get_node)]


def create_app(settings: EdgeSettings | None = None) -> FastAPI:
    settings = settings or EdgeSettings()
    tls = settings.transport()  # mutual TLS, or plaintext only when asked for: checked before anything runs

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        node = build_node(settings)
        node.start()
        frames = FrameIngestService(node.ingest_frame, node.metrics, settings.max_frame_bytes, tokens,
                                    streams=FrameStreams(settings.max_frame_streams,
                                                         settings.frame_stream_idle_timeout_s),
                                    camera_certificates=tls is not None)
        server, port = make_server(node.store, settings.grpc_port, settings.grpc_host, metrics=node.metrics,
                                   frames=frames, outbox=node.outbox, tls=tls,
                                   callers=settings.cloud_names, reflection_on=settings.grpc_reflection)
        server.start()
        node.uploader.start()
        retention = EdgeRetention(node.store, node.outbox, settings.retention_s, settings.retention_interval_s)
        retention.start()
        app.state.node = node
        log.info("edge %s: fetch service on :%d, uploading to %s (%s)", settings.edge_id, port,
                 settings.cloud_ingest_address, "mutual TLS" if tls else "plaintext")
        yield
        node.stop()
        retention.stop()
        node.uploader.stop()
        server.stop(grace=2).wait()
        node.outbox.close()
        node.store.close()

    # The documentation lists this edge's endpoints: served below, behind the admin token.
    app = FastAPI(title="facecodec edge encoder", version=CODEC_VERSION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    admin = [Depends(AdminAuth(load_admin_token(settings.admin_token_path)))]
    admin_only = {401: {"description": "admin token missing or wrong"}}
    tokens = CameraTokens(settings.tokens_path) if settings.camera_auth == "tokens" else None
    if tokens is None:
        log.warning("camera authentication is OFF (EDGE_CAMERA_AUTH=off): anyone reaching this port posts frames")
    harden(app, settings.max_frame_bytes + MULTIPART_SLACK, log)
    with_request_ids(app)

    @app.get("/healthz")
    def healthz(node: Node) -> dict:
        """Liveness for anyone (load balancers, compose): ok, or degraded while uploads are stalled.
        Nothing about cameras, ids or errors: that is /v1/status, with the admin token."""
        return {"status": "degraded" if node.uploader.health()["stalled"] else "ok"}

    @app.get("/v1/status", dependencies=admin, responses=admin_only)
    def status(node: Node) -> dict:
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
            "sources": {camera: source.health() for camera, source in node.sources.items()},
            "stages": node.stages.depths(),
            "onnxruntime": chosen_levels(),  # graph optimisation level per model, as measured on this machine
        }

    if settings.metrics_enabled:  # Prometheus scrapes with the token (scrape_config `authorization`)
        @app.get("/metrics", response_class=PlainTextResponse, dependencies=admin, responses=admin_only)
        def metrics(node: Node) -> PlainTextResponse:
            return PlainTextResponse(generate_latest(node.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(encode_routes(lambda request: _read_frame(request, settings.max_frame_bytes), admin,
                                     admin_only))

    @app.get("/openapi.json", dependencies=admin, include_in_schema=False)
    def openapi() -> dict:
        return app.openapi()

    @app.get("/docs", dependencies=admin, include_in_schema=False)
    def docs() -> HTMLResponse:
        # The schema goes inline: the page's own fetch of /openapi.json would not carry the token.
        return get_swagger_ui_html(openapi_url="", title=f"{app.title} - docs",
                                   swagger_ui_parameters={"spec": app.openapi()})

    @app.get("/readyz", response_model=Readiness,
             responses={503: {"model": Readiness, "description": "not ready: see which check failed",
                              "headers": {"Retry-After": {"description": "seconds to wait before asking again",
                                                          "schema": {"type": "integer"}}}}})
    def readyz(node: Node) -> JSONResponse:
        """Ready to take frames: models loaded (the node exists only after they are), both stores
        writable, and frames in flight below EDGE_MAX_FRAMES_IN_FLIGHT. /healthz only says it runs."""
        checks = {"models_loaded": True, "outbox_writable": node.outbox.writable(),
                  "enhancement_store_writable": node.store.writable(),
                  "uploads_flowing": not node.uploader.health()["stalled"],
                  "not_saturated": not node.stages.saturated}
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503,
                            headers={} if ready else {"Retry-After": str(Saturated.retry_after_s)})

    @app.post("/v1/cameras/{camera_id}/frames", status_code=201, response_model=FrameOut,
              openapi_extra={"requestBody": FRAME_BODY},
              responses={400: {"description": "empty body, no file part, or not a decodable image"},
                         401: {"description": "camera token missing or wrong"},
                         403: {"description": "this edge takes no more cameras (EDGE_MAX_CAMERAS)"},
                         413: {"description": "frame larger than EDGE_MAX_FRAME_BYTES"},
                         415: {"description": "not an image type this edge decodes"},
                         429: {"description": "the edge is saturated; retry after the Retry-After seconds"},
                         503: {"description": "dropped for a newer frame of this camera (its overflow is "
                               "drop-oldest), or the edge is stopping"}})
    async def post_frame(
        request: Request,
        node: Node,
        camera_id: Annotated[str, Path(pattern=ID_PATTERN)],
        captured_at: Annotated[datetime | None, Query(description="capture time (ISO 8601); default now")] = None,
    ) -> FrameOut:
        if tokens is not None:
            if not tokens.allows(camera_id, bearer(request.headers.get("authorization", ""))):
                node.metrics.frames_rejected.labels("401").inc()
                raise HTTPException(401, "camera token missing or wrong (Authorization: Bearer <camera token>)",
                                    headers={"WWW-Authenticate": "Bearer"})
        if captured_at is not None:  # before the body is read: nothing decoded or stored for a bad time
            try:
                captured_at = node.capture_window.check(captured_at)
            except CaptureTimeError as exc:
                node.metrics.frames_rejected.labels("422").inc()
                raise HTTPException(422, str(exc)) from exc
        if node.stages.saturated and node.cameras[camera_id].overflow == "reject":  # before reading the body
            node.metrics.frames_rejected.labels("429").inc()
            raise HTTPException(429, f"edge saturated: {node.stages.in_flight} frames in flight; retry shortly",
                                headers={"Retry-After": str(Saturated.retry_after_s)})
        try:
            frame = await _read_frame(request, settings.max_frame_bytes)
        except HTTPException as exc:
            node.metrics.frames_rejected.labels(str(exc.status_code)).inc()
            raise
        try:
            result = await asyncio.wrap_future(node.submit_frame(camera_id, frame, captured_at))
        except Saturated as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from exc
        except (CaptureTimeError, ImageDecodeError, TooManyCameras, FrameDropped, ShuttingDown) as exc:
            raise HTTPException(frame_error_status(exc), str(exc)) from exc
        faces = result.faces
        return FrameOut(
            camera_id=camera_id,
            captured_at=result.captured_at,
            faces_detected=result.detected,
            faces_withheld=result.withheld,
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
                    quality_score=round(f.quality.score, 4),
                )
                for f in faces
            ],
        )

    return app


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
