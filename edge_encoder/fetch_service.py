"""gRPC EnhancementStore: the cloud fetches a face's enhancement layers (or its scene snapshot), only
when a person asks.

With deferred coding the layers a fetch needs are coded then, from the crop the store kept, and kept
for the next viewer: the edge spends enhancement-coding time only on faces someone looks at.

With TLS (`make_server(tls=...)`) the server requires client certificates from the configured CA
(grpc-python cannot request one without requiring it; see service_common.tls), and Fetch and Erase answer
only cloud certificates (role `cloud`, service_common.certs) whose name is one of `callers`
(EDGE_CLOUD_NAMES). FrameIngest takes only camera certificates (role `camera`); camera tokens still
decide which camera id may post.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Collection
from concurrent import futures

import grpc
import numpy as np
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc, frames_pb2, frames_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from PIL import Image

from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.frame_service import FrameIngestService
from edge_encoder.metrics import EdgeMetrics
from edge_encoder.outbox import Outbox
from facecodec.bitstream import BitstreamError, CodedFace, parse
from facecodec.codec.profiles import FaceCodec, UnknownProfileError, codec_for
from service_common import request_id
from service_common.ids import ID_RULE, is_id
from service_common.tls import TlsFiles, peer_role, server_credentials

MAX_ERASE = 10_000
FETCH_THREADS = 4  # threads no camera stream can take: Fetch, Erase and health checks always get through
log = logging.getLogger(__name__)


class EnhancementFetchService(enhancement_pb2_grpc.EnhancementStoreServicer):
    """callers: the client certificate names allowed to Fetch and Erase (None: no check, plaintext)."""

    def __init__(self, store: EnhancementStore, metrics: EdgeMetrics | None = None,
                 outbox: Outbox | None = None, callers: Collection[str] | None = None) -> None:
        self.store, self.outbox, self.callers = store, outbox, callers
        self.metrics = metrics or EdgeMetrics()

    def _authorize(self, context: grpc.ServicerContext) -> None:
        if self.callers is None:
            return
        caller = peer_role(context)
        if caller is None or caller.role != "cloud" or caller.name not in self.callers:
            log.warning("%s with client certificate %r refused: no cloud certificate named in EDGE_CLOUD_NAMES",
                        context.peer(), caller)
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "only a cloud certificate named in EDGE_CLOUD_NAMES may fetch or erase")

    def Erase(self, request: enhancement_pb2.EraseRequest, context: grpc.ServicerContext):  # noqa: N802
        """Forget faces: layers, kept crops, scene snapshots, and records still waiting in the outbox. Idempotent."""
        with request_id.bound(request_id.from_grpc(context)):
            return self._erase(request, context)

    def _erase(self, request: enhancement_pb2.EraseRequest, context: grpc.ServicerContext):  # type: ignore[no-untyped-def]
        self._authorize(context)
        face_ids = list(dict.fromkeys(request.face_ids))
        if not 1 <= len(face_ids) <= MAX_ERASE or not all(is_id(f) for f in face_ids):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"send 1 to {MAX_ERASE} face_ids of {ID_RULE}")
        erased = self.store.erase(face_ids)
        if self.outbox is not None:
            self.outbox.erase(face_ids)
        self.metrics.faces_erased.inc(erased)
        log.info("erasure %s: %d of %d faces held here erased", request.erasure_id[:64], erased, len(face_ids))
        return enhancement_pb2.EraseResponse(erased=erased, not_held=len(face_ids) - erased)

    def FetchSnapshot(self, request: enhancement_pb2.SnapshotRequest, context: grpc.ServicerContext):  # noqa: N802
        """A face's scene snapshot (cameras that opt in), for a viewer the reconstructor let through."""
        with request_id.bound(request_id.from_grpc(context)):
            return self._snapshot(request, context)

    def _snapshot(self, request: enhancement_pb2.SnapshotRequest, context: grpc.ServicerContext):  # type: ignore[no-untyped-def]
        self._authorize(context)
        if not is_id(request.face_id):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"face_id must be {ID_RULE}")
        jpeg = self.store.snapshot(request.face_id)
        if jpeg is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no scene snapshot of face {request.face_id} is held here")
        try:
            with Image.open(io.BytesIO(jpeg)) as image:
                width, height = image.size
        except OSError as exc:  # our own store is damaged: say so, do not crash
            context.abort(grpc.StatusCode.DATA_LOSS, f"stored snapshot unreadable: {exc}")
        self.metrics.snapshot_fetches.inc()
        log.info("snapshot of face %s served", request.face_id)
        return enhancement_pb2.SnapshotResponse(face_id=request.face_id, jpeg=jpeg, width=width, height=height)

    def Fetch(self, request: enhancement_pb2.FetchRequest, context: grpc.ServicerContext):  # noqa: N802
        # The cloud's request id (gRPC metadata x-request-id) on this call's log lines: one view followed
        # from the reconstructor's REST call to here.
        with request_id.bound(request_id.from_grpc(context)):
            self._authorize(context)
            with self.metrics.fetch_seconds.time():
                return self._fetch(request, context)

    def _fetch(self, request: enhancement_pb2.FetchRequest, context: grpc.ServicerContext):  # type: ignore[no-untyped-def]
        if not is_id(request.face_id):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"face_id must be {ID_RULE}")
        found = self.store.get(request.face_id)
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"face {request.face_id} is not (or no longer) held here")
        level = min(request.max_level, found.levels) if request.max_level else found.levels
        try:
            coded = parse(found.container)
            codec = codec_for(coded.model_id, coded.rate_id)
        except (BitstreamError, UnknownProfileError) as exc:  # our own store is damaged: say so, do not crash
            context.abort(grpc.StatusCode.DATA_LOSS, f"stored container unreadable: {exc}")
        # Only what that level decodes from: WebP refinement needs 1..N, the learned codec layer N alone.
        needed = codec.layers_needed(level) if level else ()
        have = {layer.level for layer in coded.enhancements}
        coded_now = found.source is not None and not set(needed) <= have
        if coded_now:
            coded = self._code_now(codec, coded, found.source, level, context)
            self.store.keep_layers(request.face_id, coded.to_bytes())  # the next viewer pays nothing
        self.metrics.fetches.labels(str(coded_now).lower()).inc()
        kept = tuple(layer for layer in coded.enhancements if layer.level in needed)
        if len(kept) < len(needed):
            context.abort(grpc.StatusCode.DATA_LOSS, f"enhancement level {level} of face {request.face_id} is lost")
        container = CodedFace(coded.model_id, coded.rate_id, coded.crop_size, coded.base, kept).to_bytes()
        log.info("fetch of face %s at level %d served (%d bytes%s)", request.face_id, level, len(container),
                 ", coded now" if coded_now else "")
        return enhancement_pb2.FetchResponse(face_id=request.face_id, container=container, levels=level)

    @staticmethod
    def _code_now(codec: FaceCodec, coded: CodedFace, source: bytes, level: int,
                  context: grpc.ServicerContext) -> CodedFace:
        """Deferred enhancement coding: the layers `level` needs, from the crop kept at capture."""
        try:
            crop = np.asarray(Image.open(io.BytesIO(source)).convert("RGB"))
            return codec.add_enhancement(crop, coded, level)
        except (OSError, ValueError) as exc:
            context.abort(grpc.StatusCode.DATA_LOSS, f"stored crop unreadable: {exc}")
            raise  # abort raises; this keeps type checkers and readers sure nothing falls through


def make_server(store: EnhancementStore, port: int, host: str = "127.0.0.1", metrics: EdgeMetrics | None = None,
                frames: FrameIngestService | None = None,
                outbox: Outbox | None = None, tls: TlsFiles | None = None,
                callers: Collection[str] = ("cloud",), reflection_on: bool = False) -> tuple[grpc.Server, int]:
    """tls: None, plaintext and no caller check; else mutual TLS, Fetch and Erase only for cloud
    certificates named in `callers`, FrameIngest only for camera certificates. reflection_on: serve gRPC
    reflection (lists the services to anyone who connects)."""
    credentials = None if tls is None else server_credentials(tls, require_client_cert=True)  # bad files: fail now
    # A camera's frame stream holds a thread for as long as it is open: FrameStreams caps them below the
    # pool, so FETCH_THREADS stay free for the cloud whatever the cameras do.
    streams = frames.streams.max_streams if frames is not None else 0
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=streams + FETCH_THREADS, thread_name_prefix="edge"))
    enhancement_pb2_grpc.add_EnhancementStoreServicer_to_server(EnhancementFetchService(
        store, metrics, outbox, callers=None if tls is None else frozenset(callers)), server)
    names = [enhancement_pb2.DESCRIPTOR.services_by_name["EnhancementStore"].full_name]
    if frames is not None:  # cameras' frame streams (FrameIngest), beside the cloud's fetches
        if tls is not None and not getattr(frames, "camera_certificates", False):
            raise ValueError("over TLS, FrameIngest must check camera certificates (camera_certificates=True)")
        frames_pb2_grpc.add_FrameIngestServicer_to_server(frames, server)
        names.append(frames_pb2.DESCRIPTOR.services_by_name["FrameIngest"].full_name)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in names:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    if reflection_on:
        reflection.enable_server_reflection((*names, reflection.SERVICE_NAME), server)
    address = f"{host}:{port}"
    if credentials is None:
        return server, server.add_insecure_port(address)
    return server, server.add_secure_port(address, credentials)
