"""gRPC Ingest: edges stream base layers; each face is validated, stored durably, then acknowledged."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Collection, Iterator
from concurrent import futures

import grpc
import redis
from facecoding.v1 import ingest_pb2, ingest_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cloud_analyzer.recognition import decode_base_layer
from cloud_analyzer.store import Store
from facecodec.bitstream import BitstreamError, parse
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.profiles import UnknownProfileError
from facecodec.frontend.quality import ISSUES as QUALITY_ISSUES

log = logging.getLogger(__name__)
ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
Ack = ingest_pb2.IngestAck


class InvalidRecord(ValueError):
    pass


def validate(record: ingest_pb2.FaceRecord) -> dict:
    """The Redis fields for a valid record; InvalidRecord says what is wrong otherwise."""
    if not ID.match(record.face_id):
        raise InvalidRecord("face_id must be 1-64 characters of [A-Za-z0-9_.-]")
    if not ID.match(record.camera_id):
        raise InvalidRecord("camera_id must be 1-64 characters of [A-Za-z0-9_.-]")
    if not ID.match(record.edge_id):
        raise InvalidRecord("edge_id must be 1-64 characters of [A-Za-z0-9_.-]")
    if not record.HasField("captured_at"):
        raise InvalidRecord("captured_at is required")
    if record.track_id and not ID.match(record.track_id):
        raise InvalidRecord("track_id must be 1-64 characters of [A-Za-z0-9_.-] (or empty)")
    try:
        coded = parse(record.base_layer)
    except BitstreamError as exc:
        raise InvalidRecord(f"base_layer: {exc}") from exc
    if coded.enhancements:
        # Pixels leave the edge only on a Fetch a person caused; refuse them here.
        raise InvalidRecord("base_layer container carries enhancement layers; send the base layer only")
    if (coded.model_id, coded.rate_id) != (record.model_id, record.rate_id):
        raise InvalidRecord("model_id/rate_id disagree with the container header")
    try:
        decode_base_layer(record.base_layer)
    except (UnknownProfileError, BaseLayerError) as exc:
        raise InvalidRecord(f"base_layer: {exc}") from exc
    b = record.bbox
    return {**_quality(record),
        "camera_id": record.camera_id,
        "captured_at_ms": record.captured_at.ToMilliseconds(),
        "bbox": json.dumps([round(b.x1, 1), round(b.y1, 1), round(b.x2, 1), round(b.y2, 1)]),
        "detection_score": f"{record.detection_score:.4f}",
        "model_id": coded.model_id,
        "rate_id": coded.rate_id,
        "codec_version": record.codec_version[:32],
        "base_layer": record.base_layer,
        "edge_id": record.edge_id,  # its address comes from configuration, never from the record
        "enhancement_levels": record.enhancement_levels,
        "track_id": record.track_id,
    }


def _quality(record: ingest_pb2.FaceRecord) -> dict:
    """The edge's quality assessment as Redis fields; none from edges that do not send one."""
    if not record.HasField("quality"):
        return {}
    q = record.quality
    if not all(math.isfinite(v) for v in (q.face_width_px, q.sharpness, q.yaw)):
        raise InvalidRecord("quality scores must be finite numbers")
    unknown = set(q.issues) - set(QUALITY_ISSUES)
    if unknown:
        raise InvalidRecord(f"unknown quality issues {sorted(unknown)}; known {list(QUALITY_ISSUES)}")
    return {"quality_issues": ",".join(dict.fromkeys(q.issues)), "face_width_px": f"{q.face_width_px:.1f}",
            "sharpness": f"{q.sharpness:.1f}", "yaw": f"{q.yaw:.3f}"}


class IngestService(ingest_pb2_grpc.IngestServicer):
    def __init__(self, store: Store, edges: Collection[str]) -> None:
        self.store, self.edges = store, edges

    def Ingest(self, request_iterator: Iterator[ingest_pb2.FaceRecord], context: grpc.ServicerContext):  # noqa: N802
        for record in request_iterator:
            if record.edge_id not in self.edges:
                # Not REJECTED: the records are fine, the sender is not trusted. The edge keeps them and
                # retries, so a configuration fix loses nothing.
                log.warning("ingest from untrusted edge %r refused", record.edge_id[:64])
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "this edge is not trusted here (ANALYZER_EDGES)")
            try:
                fields = validate(record)
            except InvalidRecord as exc:
                yield Ack(face_id=record.face_id, status=Ack.REJECTED, error=str(exc))
                continue
            try:
                created = self.store.ingest(record.face_id, fields)
            except redis.RedisError as exc:
                # Not acked, so the edge keeps it and retries: nothing is lost.
                log.error("redis unavailable during ingest: %s", exc)
                context.abort(grpc.StatusCode.UNAVAILABLE, "storage unavailable; retry later")
            yield Ack(face_id=record.face_id, status=Ack.ACCEPTED if created else Ack.DUPLICATE)


def make_server(store: Store, port: int, edges: Collection[str], host: str = "127.0.0.1") -> tuple[grpc.Server, int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)],
    )
    ingest_pb2_grpc.add_IngestServicer_to_server(IngestService(store, edges), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    name = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name
    health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection((name, reflection.SERVICE_NAME), server)
    return server, server.add_insecure_port(f"{host}:{port}")
