"""Cloud reconstructor: a face image on request, from the base layer alone or with the edge's layers."""

from __future__ import annotations

import io
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Literal

import grpc
import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from PIL import Image

import facecodec
from cloud_reconstructor.comparison import Comparison, compare
from cloud_reconstructor.edge_client import RETRYABLE, EdgeClients, EdgeFetchError
from cloud_reconstructor.face_files import FORM_SLACK, decode_routes
from cloud_reconstructor.metrics import ReconstructorMetrics
from cloud_reconstructor.settings import ReconstructorSettings
from cloud_reconstructor.store import FaceIndex
from facecodec.bitstream import BitstreamError, CodedFace, parse
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.enhancement_layer import EnhancementLayerError
from facecodec.codec.profiles import UnknownProfileError, codec_for
from service_common.access.denials import DenialFlusher
from service_common.gate import BodyLimits, protect
from service_common.guard import Caller, build_access, require
from service_common.health import readiness
from service_common.http import harden
from service_common.ids import ID_PATTERN
from service_common.prometheus import count_redis_errors, metrics_route
from service_common.request_id import with_request_ids

log = logging.getLogger(__name__)
DECODE_ERRORS = (BitstreamError, BaseLayerError, EnhancementLayerError, UnknownProfileError)
MAX_REQUEST_BYTES = 64 * 1024  # every endpoint but POST /v1/decode is a GET: a large body is never read
SNAPSHOT_MAX_SIDE = 480  # the longest side of an edge's scene snapshot (proto: SnapshotResponse)
FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp")}
MIN_SIZE, MAX_SIZE = 16, 1024  # output edge in px: a thumbnail to a print; beyond, only bytes grow
EDGE_RETRY_AFTER_S = 10  # an unreachable edge: worth retrying soon (its outbox and fetch service restart)


def edge_failure(face_id: str, exc: EdgeFetchError, what: str, not_found: HTTPException,
                 retry_hint: str = "") -> HTTPException:
    """What a client is told when the edge holding `what` of a face could not give it: `not_found` when the
    edge does not hold it, 503 with Retry-After when it is unreachable, else 502. The details (the edge's
    address, gRPC's text) are for the log: in a reply they would tell a client which internal ports are open."""
    log.warning("face %s: %s fetch from its edge failed: %s", face_id, what, exc)
    if exc.code == grpc.StatusCode.NOT_FOUND:
        return not_found
    if exc.code in RETRYABLE:
        return HTTPException(503, f"the edge holding this face's {what} is unreachable; retry later{retry_hint}",
                             headers={"Retry-After": str(EDGE_RETRY_AFTER_S)})
    return HTTPException(502, f"the edge holding this face's {what} refused the fetch")


@dataclass
class Reconstructor:
    settings: ReconstructorSettings
    faces: FaceIndex
    edges: EdgeClients

    def image(self, face_id: str, layers: str, level: int | None) -> tuple[np.ndarray, int]:
        image, _, decoded_level = self.decoded(face_id, level, layers != "base")
        return image, decoded_level

    def decoded(self, face_id: str, level: int | None, full: bool = True) -> tuple[np.ndarray, CodedFace, int]:
        """(image, the container it was decoded from, its level): from the base layer alone unless `full`
        (or level 0), else the base plus the layers `level` (default: every level the edge keeps) needs."""
        ref = self.faces.get(face_id)
        if ref is None:
            raise HTTPException(404, f"face {face_id} not found")
        try:
            base = parse(ref.base_layer, base_only=True)
            codec = codec_for(base.model_id, base.rate_id)
            if not full or level == 0:
                return codec.reconstruct(base, 0), base, 0
            level = ref.enhancement_levels if level is None else level
            if not 1 <= level <= ref.enhancement_levels:
                raise HTTPException(
                    422, f"level must be 1..{ref.enhancement_levels} for this face (levels kept by its edge)"
                )
            address = self.settings.edges.get(ref.edge_id)
            if address is None:
                log.error("face %s is held by edge %r, which RECONSTRUCTOR_EDGES does not name", face_id, ref.edge_id)
                raise HTTPException(502, "the edge holding this face's enhancement layers is not configured here")
            try:
                container = self.edges.fetch(address, face_id, level)
            except EdgeFetchError as exc:
                gone = HTTPException(410, "this face's enhancement layers are no longer kept by its edge; "
                                          "ask for layers=base")
                raise edge_failure(face_id, exc, "enhancement layers", gone, ", or ask for layers=base") from exc
            full_face = self._from_edge(face_id, container, base, codec.layers_needed(level))
            try:
                return codec.reconstruct(full_face, level), full_face, level
            except EnhancementLayerError as exc:  # e.g. a layer declaring another pixel size
                raise _refuse(face_id, str(exc)) from exc
        except DECODE_ERRORS as exc:
            log.error("face %s: stored bitstream cannot be decoded: %s", face_id, exc)
            raise HTTPException(502, "this face's stored bitstream cannot be decoded") from exc


    def snapshot(self, face_id: str) -> bytes:
        """The scene snapshot the face's edge keeps (JPEG, as the edge made it), checked before it is
        served: bounded in bytes, a JPEG whose declared size is within the edges' bound."""
        ref = self.faces.get(face_id)
        if ref is None:
            raise HTTPException(404, f"face {face_id} not found")
        address = self.settings.edges.get(ref.edge_id)
        if address is None:
            log.error("face %s is held by edge %r, which RECONSTRUCTOR_EDGES does not name", face_id, ref.edge_id)
            raise HTTPException(502, "the edge holding this face's snapshot is not configured here")
        try:
            jpeg = self.edges.fetch_snapshot(address, face_id)
        except EdgeFetchError as exc:
            missing = HTTPException(404, "no scene snapshot of this face is kept: its camera does not keep "
                                         "them, or its edge no longer holds the face")
            raise edge_failure(face_id, exc, "snapshot", missing) from exc
        if len(jpeg) > self.settings.max_edge_container_bytes:
            raise _refuse(face_id, f"snapshot of {len(jpeg)} bytes, more than {self.settings.max_edge_container_bytes}")
        try:
            with Image.open(io.BytesIO(jpeg)) as image:  # the header only: nothing is decoded here
                kind, size = image.format, image.size
        except OSError as exc:
            raise _refuse(face_id, "the snapshot is not an image") from exc
        if kind != "JPEG" or max(size) > SNAPSHOT_MAX_SIDE:
            raise _refuse(face_id, f"snapshot {kind} {size[0]}x{size[1]}, wanted a JPEG within {SNAPSHOT_MAX_SIDE} px")
        return jpeg

    def _from_edge(self, face_id: str, container: bytes, base: CodedFace, needed: tuple[int, ...]) -> CodedFace:
        """The edge's container, only if it is what was asked for: bounded in bytes, the same base layer,
        exactly the enhancement levels the wanted quality needs (each layer's pixel size is checked by the
        codec before it decodes). Anything else is refused with 502, undecoded."""
        limit = self.settings.max_edge_container_bytes
        if len(container) > limit:
            raise _refuse(face_id, f"{len(container)} bytes, more than {limit}")
        try:
            full = parse(container)
        except BitstreamError as exc:
            raise _refuse(face_id, str(exc)) from exc
        if full.base != base.base or (full.model_id, full.rate_id, full.crop_size) != (
                base.model_id, base.rate_id, base.crop_size):
            raise _refuse(face_id, "it is for a different base layer")
        levels = sorted(layer.level for layer in full.enhancements)
        if levels != sorted(needed):  # what the edge sends: exactly the layers this level decodes from
            raise _refuse(face_id, f"levels {levels[:16]}, wanted {list(needed)}")
        return full


def _refuse(face_id: str, why: str) -> HTTPException:
    log.error("face %s: the container from its edge is refused: %s", face_id, why)
    return HTTPException(502, f"the edge returned an unusable enhancement container ({why})")


def encode_image(image: np.ndarray, format: str, size: int | None, quality: int | None) -> bytes:
    """The face as `format`, resized to `size` px square when asked (Lanczos: sharp when shrinking)."""
    picture = Image.fromarray(image)
    if size is not None and picture.size != (size, size):
        picture = picture.resize((size, size), Image.Resampling.LANCZOS)
    options = {} if format == "png" else {"quality": quality or 90}
    buffer = io.BytesIO()
    picture.save(buffer, format=FORMATS[format][0], **options)
    return buffer.getvalue()


def get_reconstructor(request: Request) -> Reconstructor:
    return request.app.state.reconstructor


# Module level: with postponed annotations FastAPI resolves dependency aliases from module globals.
Dep = Annotated[Reconstructor, Depends(get_reconstructor)]


def create_app(settings: ReconstructorSettings | None = None) -> FastAPI:
    settings = settings or ReconstructorSettings()
    tls = settings.transport()  # mutual TLS, or plaintext only when asked for: checked before anything runs
    settings.apply_ort()  # before the codec's sessions open (on the first view)
    metrics = ReconstructorMetrics(tuple(settings.edges))  # this app's own registry

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        faces = FaceIndex(settings.redis_url, settings.redis_timeout_s, settings.redis_password_file,
                          settings.redis_read_from_replicas)
        faces.check_layout()  # before serving: with other shard counts, no face would be found
        app.state.access = build_access(faces.r, settings)
        denial_flusher = DenialFlusher(app.state.access.denials)
        denial_flusher.start()
        app.state.reconstructor = Reconstructor(
            settings, faces, EdgeClients(settings.fetch_timeout_s, settings.fetch_retries, tls, metrics,
                                         {address: edge for edge, address in settings.edges.items()}),
        )
        app.state.ready_checks = {"redis": lambda: bool(faces.r.ping()), "models_loaded": lambda: True}
        yield
        denial_flusher.stop()
        app.state.reconstructor.edges.close()

    docs = {} if settings.docs_enabled else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="facecodec cloud reconstructor", version=facecodec.__version__, lifespan=lifespan, **docs)
    upload_limit = settings.max_upload_bytes + FORM_SLACK  # the only route with a body: POST /v1/decode
    harden(app, max(MAX_REQUEST_BYTES, upload_limit), log)
    protect(app, BodyLimits(json=MAX_REQUEST_BYTES, form=upload_limit))
    with_request_ids(app)

    count_redis_errors(app, metrics.redis_errors.inc)
    if settings.cors_origins:
        # Outermost (added last): a browser's preflight carries no key, so it is answered here, before
        # the gate. Only the listed origins (the console's) may read answers; credentials are never
        # cookies, always the Authorization header the console sets.
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET"],
                           allow_headers=["Authorization"], expose_headers=["X-Layers", "X-Enhancement-Level"],
                           max_age=600)

    @app.get("/healthz")
    def healthz() -> dict:
        """Open liveness: the process answers. Redis and the rest are /readyz's."""
        return {"status": "ok"}

    @app.get(
        "/v1/faces/{face_id}/image",
        responses={200: {"content": {media: {"schema": {"type": "string", "format": "binary"}}
                                     for _, media in FORMATS.values()},
                         "description": "the reconstructed aligned face"},
                   404: {"description": "no such face"},
                   410: {"description": "layers=full: the edge no longer keeps this face's enhancement layers "
                                        "(layers=base still answers)"},
                   502: {"description": "layers=full: the edge answered with something unusable"},
                   503: {"description": "storage unavailable, or (layers=full) the edge is unreachable: retry "
                                        "after Retry-After, or ask for layers=base"}},
        response_class=Response,
    )
    async def face_image(
        reconstructor: Dep,
        caller: Annotated[Caller, require("faces:view_base", "face.view", {("layers", "full"): "faces:view"})],
        face_id: Annotated[str, Path(pattern=ID_PATTERN)],
        layers: Annotated[Literal["base", "full"], Query(description="base: from the base layer alone")] = "base",
        level: Annotated[int | None, Query(ge=1, le=255, description="layers=full: enhancement level; "
                                                                     "default all the edge keeps")] = None,
        format: Annotated[Literal["png", "jpeg", "webp"], Query(description="image format")] = "png",
        size: Annotated[int | None, Query(ge=MIN_SIZE, le=MAX_SIZE, description="output edge in px (the face "
                                                                               "is square); default native")] = None,
        quality: Annotated[int | None, Query(ge=1, le=100, description="jpeg/webp quality; default 90")] = None,
    ) -> Response:
        if quality is not None and format == "png":
            raise HTTPException(422, "quality applies to format=jpeg or format=webp (png is lossless)")
        if level is not None and layers == "base":
            raise HTTPException(422, "level applies to layers=full")
        caller.audit["layers"] = "base" if layers == "base" else f"full:{level or 'all'}"
        image, decoded_level = await run_in_threadpool(reconstructor.image, face_id, layers, level)
        caller.audit["layers"] = "base" if layers == "base" else f"1-{decoded_level}"
        body = await run_in_threadpool(encode_image, image, format, size, quality)
        metrics.views.labels(layers).inc()
        return Response(body, media_type=FORMATS[format][1],
                        headers={"X-Layers": layers, "X-Enhancement-Level": str(decoded_level)})

    @app.get(
        "/v1/faces/{face_id}/snapshot",
        responses={200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
                         "description": "the scene around the face, as the edge kept it (cameras that opt in)"},
                   404: {"description": "no such face, or no snapshot of it kept (its camera does not keep them, "
                                        "or its edge no longer holds the face)"},
                   502: {"description": "the edge answered with something unusable, or is not configured here"},
                   503: {"description": "storage unavailable, or the edge is unreachable: retry after Retry-After"}},
        response_class=Response,
    )
    async def face_snapshot(
        reconstructor: Dep,
        caller: Annotated[Caller, require("faces:view", "face.snapshot")],
        face_id: Annotated[str, Path(pattern=ID_PATTERN)],
    ) -> Response:
        """Full pixels of the scene, fetched from the edge for this viewer only (never stored in the cloud)."""
        caller.audit["layers"] = "snapshot"
        jpeg = await run_in_threadpool(reconstructor.snapshot, face_id)
        metrics.views.labels("snapshot").inc()
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/v1/faces/{face_id}/comparison", response_model=Comparison,
             responses={404: {"description": "no such face"},
                        410: {"description": "the edge no longer keeps this face's enhancement layers"},
                        502: {"description": "the edge answered with something unusable"},
                        503: {"description": "storage unavailable, or the edge is unreachable: retry after "
                                             "Retry-After"}})
    async def face_comparison(
        reconstructor: Dep,
        caller: Annotated[Caller, require("faces:view", "face.compare")],
        face_id: Annotated[str, Path(pattern=ID_PATTERN)],
        level: Annotated[int | None, Query(ge=0, le=255, description="0: base alone; default: every level")] = None,
    ) -> Comparison:
        """One level's bytes per layer and PSNR, beside a JPEG and a WebP of the same size.

        The reference (`reference` in the answer) is the face's full reconstruction; JPEG and WebP encode it,
        their quality found by binary search. Full pixels: fetched from the edge, audited."""
        caller.audit["layers"] = f"compare:{'all' if level is None else level}"
        result = await run_in_threadpool(compare, reconstructor.decoded, face_id, level)
        caller.audit["detail"] = f"level {result.level} of {result.levels}; {result.budget_bytes} bytes"
        metrics.views.labels("compare").inc()
        return result

    app.include_router(decode_routes(settings.max_upload_bytes, metrics))
    app.get("/readyz", responses={503: {"description": "not ready; Retry-After says when to ask again"}})(readiness)

    if settings.metrics_enabled:  # Prometheus scrapes with a metrics:read key (scrape_config `authorization`)
        metrics_route(app, metrics.registry)

    return app
