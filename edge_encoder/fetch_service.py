"""gRPC EnhancementStore: the cloud fetches a face's full container, only when a person asks."""

from __future__ import annotations

import re
from concurrent import futures

import grpc
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edge_encoder.enhancement_store import EnhancementStore
from facecodec.bitstream import BitstreamError, CodedFace, parse
from facecodec.codec.profiles import UnknownProfileError, codec_for

FACE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class EnhancementFetchService(enhancement_pb2_grpc.EnhancementStoreServicer):
    def __init__(self, store: EnhancementStore) -> None:
        self.store = store

    def Fetch(self, request: enhancement_pb2.FetchRequest, context: grpc.ServicerContext):  # noqa: N802
        if not FACE_ID.match(request.face_id):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "face_id must be 1-64 characters of [A-Za-z0-9_.-]")
        found = self.store.get(request.face_id)
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"face {request.face_id} is not (or no longer) held here")
        container, levels = found
        if request.max_level and request.max_level < levels:
            try:
                coded = parse(container)
            except BitstreamError as exc:  # our own store is damaged: say so, do not crash
                context.abort(grpc.StatusCode.DATA_LOSS, f"stored container unreadable: {exc}")
            try:
                needed = codec_for(coded.model_id, coded.rate_id).layers_needed(request.max_level)
            except UnknownProfileError as exc:
                context.abort(grpc.StatusCode.DATA_LOSS, f"stored container unreadable: {exc}")
            # Only what that level decodes from: WebP refinement needs 1..N, the learned codec layer N alone.
            kept = tuple(e for e in coded.enhancements if e.level in needed)
            container = CodedFace(coded.model_id, coded.rate_id, coded.crop_size, coded.base, kept).to_bytes()
            levels = request.max_level
        return enhancement_pb2.FetchResponse(face_id=request.face_id, container=container, levels=levels)


def make_server(store: EnhancementStore, port: int, host: str = "[::]") -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    enhancement_pb2_grpc.add_EnhancementStoreServicer_to_server(EnhancementFetchService(store), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service_name = enhancement_pb2.DESCRIPTOR.services_by_name["EnhancementStore"].full_name
    health_servicer.set(service_name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((service_name, reflection.SERVICE_NAME), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    return server, bound
