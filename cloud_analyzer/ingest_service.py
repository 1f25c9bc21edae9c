"""gRPC Ingest: edges stream base layers; each face is validated, stored durably, then acknowledged.

One bad record is REJECTED alone and the stream goes on. A stream that sends nothing for
`idle_timeout_s` is ended, one peer holds at most `max_streams_per_peer` streams, and the server runs at
most `max_streams` RPCs at once, refusing (not queueing) the rest: a few idle or hostile clients cannot
take the thread pool from every other edge.

With mutual TLS (`make_server(tls=...)` with a client CA) an edge is who its client certificate says:
a stream is served only when the certificate has the edge role with a name in the trusted edges
(`spiffe://facecodec/edge/<edge_id>`, service_common.certs) and every record's `edge_id` is that name;
anything else (a cloud or camera certificate, another edge's records) ends the stream with
PERMISSION_DENIED.

Back-pressure: when Redis is full (maxmemory with `noeviction`, as compose and the launcher run it) a
face cannot be stored, so it is not acknowledged: the stream ends with RESOURCE_EXHAUSTED ("Redis is
full", and `grpc-retry-pushback-ms` in the trailers), a status the edge retries with back-off while it
keeps every face not yet acknowledged. Faces acknowledged before stay stored; ingest resumes by itself
once retention or an erasure has freed memory. Any other Redis failure is UNAVAILABLE, retried alike.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import NoReturn

import grpc
import redis
from facecoding.v1 import ingest_pb2, ingest_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cloud_analyzer.metrics import AnalyzerMetrics
from cloud_analyzer.recognition import decode_base_layer
from cloud_analyzer.store import IngestResult, Store
from facecodec.bitstream import MAX_ENHANCEMENT_LAYERS, BitstreamError, parse
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.profiles import UnknownProfileError
from facecodec.frontend.quality import ISSUES as QUALITY_ISSUES
from service_common import request_id
from service_common.capture_time import CaptureTimeError, CaptureWindow, timestamp_ms
from service_common.ids import ID, ID_RULE
from service_common.redis_keys import EDGES_SEEN
from service_common.tls import TlsFiles, peer_role, server_credentials

log = logging.getLogger(__name__)
MAX_COORDINATE = 1e6  # pixels; far beyond any frame, still exact in a float32
CONTACT_EVERY_S = 1.0  # how often an edge's last contact is written while it streams
FULL_RETRY_MS = 5_000  # the pushback a full Redis asks of the edges (retention frees memory every interval)
REDIS_FULL = "cloud storage is full (Redis maxmemory); the edge keeps its faces and retries later"
Ack = ingest_pb2.IngestAck
INGEST_RESULT = {IngestResult.CREATED: "accepted", IngestResult.DUPLICATE: "duplicate",
                 IngestResult.CONFLICT: "conflict"}  # the analyzer_faces_ingested label
STATUS = {IngestResult.CREATED: Ack.ACCEPTED, IngestResult.DUPLICATE: Ack.DUPLICATE,
          IngestResult.CONFLICT: Ack.CONFLICT}


class InvalidRecord(ValueError):
    pass


@dataclass(frozen=True)
class IngestLimits:
    """How much of the server one stream and one peer may hold (AnalyzerSettings.ingest_*)."""

    max_streams: int = 32  # RPCs at once (threads); beyond, RESOURCE_EXHAUSTED at once
    max_streams_per_peer: int = 4  # streams at once from one client host; beyond, RESOURCE_EXHAUSTED
    idle_timeout_s: float = 30.0  # a stream with no record for this long is ended
    capture_window: CaptureWindow = CaptureWindow()
    track_ttl_s: float | None = None  # how long a closed track's summary is kept (the retention); None: ever


def validate(record: ingest_pb2.FaceRecord, window: CaptureWindow | None = None) -> dict:
    """The Redis fields for a valid record; InvalidRecord says what is wrong otherwise."""
    if not ID.match(record.face_id):
        raise InvalidRecord(f"face_id must be {ID_RULE}")
    if not ID.match(record.camera_id):
        raise InvalidRecord(f"camera_id must be {ID_RULE}")
    if not ID.match(record.edge_id):
        raise InvalidRecord(f"edge_id must be {ID_RULE}")
    if not record.HasField("captured_at"):
        raise InvalidRecord("captured_at is required")
    try:
        captured_ms = (window or CaptureWindow()).check_ms(
            timestamp_ms(record.captured_at.seconds, record.captured_at.nanos))
    except CaptureTimeError as exc:
        raise InvalidRecord(str(exc)) from exc
    if record.track_id and not ID.match(record.track_id):
        raise InvalidRecord(f"track_id must be {ID_RULE} (or empty)")
    b = record.bbox
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in (b.x1, b.y1, b.x2, b.y2)):
        raise InvalidRecord(f"bbox coordinates must be finite numbers within +-{MAX_COORDINATE:g} pixels")
    if not (math.isfinite(record.detection_score) and 0 <= record.detection_score <= 1):
        raise InvalidRecord("detection_score must be a number in [0, 1]")
    if record.enhancement_levels > MAX_ENHANCEMENT_LAYERS:
        raise InvalidRecord(f"enhancement_levels must be 0..{MAX_ENHANCEMENT_LAYERS}")
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
    return {**_quality(record),
        "camera_id": record.camera_id,
        "captured_at_ms": captured_ms,
        "bbox": json.dumps([round(b.x1, 1), round(b.y1, 1), round(b.x2, 1), round(b.y2, 1)]),
        "detection_score": f"{record.detection_score:.4f}",
        "model_id": coded.model_id,
        "rate_id": coded.rate_id,
        "codec_version": record.codec_version[:32],
        "base_layer": record.base_layer,
        "edge_id": record.edge_id,  # its address comes from configuration, never from the record
        "enhancement_levels": record.enhancement_levels,
        "track_id": record.track_id,
        # The edge's REST call that posted the frame, if it had a sane id (anything else is dropped):
        # on the face, its stream entry and its event, for following one face through the logs.
        **({"request_id": rid} if (rid := request_id.valid(record.request_id)) else {}),
    }


def validate_track_closed(record: ingest_pb2.FaceRecord, window: CaptureWindow | None = None) -> dict:
    """The Redis fields of a TrackClosed notice; InvalidRecord says what is wrong otherwise."""
    for name in ("face_id", "camera_id", "edge_id", "track_id"):
        if not ID.match(getattr(record, name)):
            raise InvalidRecord(f"{name} must be {ID_RULE}")
    if record.base_layer:
        raise InvalidRecord("a track_closed notice carries no base_layer")
    closed = record.track_closed
    if not (closed.HasField("first_seen") and closed.HasField("last_seen")):
        raise InvalidRecord("track_closed needs first_seen and last_seen")
    try:
        first, last = (window or CaptureWindow()).check_ms(timestamp_ms(closed.first_seen.seconds,
                                                                        closed.first_seen.nanos)), \
            (window or CaptureWindow()).check_ms(timestamp_ms(closed.last_seen.seconds, closed.last_seen.nanos))
    except CaptureTimeError as exc:
        raise InvalidRecord(str(exc)) from exc
    if last < first or closed.faces_uplinked > closed.faces_seen:
        raise InvalidRecord("track_closed: last_seen before first_seen, or more faces uplinked than seen")
    return {"camera_id": record.camera_id, "edge_id": record.edge_id, "first_seen_ms": first,
            "last_seen_ms": last, "faces_seen": closed.faces_seen, "faces_uplinked": closed.faces_uplinked,
            "closed_at_ms": int(time.time() * 1000)}


def _quality(record: ingest_pb2.FaceRecord) -> dict:
    """The edge's quality assessment as Redis fields; none from edges that do not send one."""
    if not record.HasField("quality"):
        return {}
    q = record.quality
    if not all(math.isfinite(v) for v in (q.face_width_px, q.sharpness, q.yaw, q.score)):
        raise InvalidRecord("quality scores must be finite numbers")
    if not 0 <= q.score <= 1:
        raise InvalidRecord("quality score must be in [0, 1]")
    unknown = set(q.issues) - set(QUALITY_ISSUES)
    if unknown:
        raise InvalidRecord(f"unknown quality issues {sorted(unknown)}; known {list(QUALITY_ISSUES)}")
    return {"quality_issues": ",".join(dict.fromkeys(q.issues)), "face_width_px": f"{q.face_width_px:.1f}",
            "sharpness": f"{q.sharpness:.1f}", "yaw": f"{q.yaw:.3f}", "quality_score": f"{q.score:.4f}"}


def peer_host(peer: str) -> str:
    """The client host of a gRPC peer string: 'ipv4:10.0.0.5:41234' -> '10.0.0.5',
    'ipv6:[::1]:41234' -> '::1'; other forms (unix sockets) are their own peer."""
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in address:
        return address.rsplit(":", 1)[0].strip("[]")
    return peer


class _Streams:
    """Open streams: how many per peer, and when each last delivered a record. A watchdog thread
    cancels streams idle past the timeout; cancelling wakes the handler's blocked request iterator."""

    def __init__(self, limits: IngestLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._per_peer: Counter[str] = Counter()
        self._last: dict[int, tuple[grpc.ServicerContext, float]] = {}
        self._watchdog = threading.Thread(target=self._watch, name="ingest-idle-watchdog", daemon=True)
        self._watchdog.start()

    def open(self, key: int, peer: str, context: grpc.ServicerContext) -> bool:
        with self._lock:
            if self._per_peer[peer] >= self.limits.max_streams_per_peer:
                return False
            self._per_peer[peer] += 1
            self._last[key] = (context, time.monotonic())
            return True

    def touch(self, key: int, context: grpc.ServicerContext) -> None:
        with self._lock:
            self._last[key] = (context, time.monotonic())

    def close(self, key: int, peer: str) -> None:
        with self._lock:
            self._last.pop(key, None)
            self._per_peer[peer] -= 1
            if self._per_peer[peer] <= 0:
                del self._per_peer[peer]

    def _watch(self) -> None:
        period = min(1.0, self.limits.idle_timeout_s / 4)
        while True:
            time.sleep(period)
            deadline = time.monotonic() - self.limits.idle_timeout_s
            with self._lock:
                idle = [(key, ctx) for key, (ctx, last) in self._last.items() if last < deadline]
                for key, _ in idle:
                    self._last.pop(key)  # cancelled once; its handler closes it on the way out
            for _, context in idle:
                log.warning("ingest stream from %s idle for %.0fs; ended", context.peer(), self.limits.idle_timeout_s)
                context.cancel()


class IngestService(ingest_pb2_grpc.IngestServicer):
    """authenticate: the server verifies client certificates (mutual TLS); their names are the edges."""

    def __init__(self, store: Store, edges: Collection[str], limits: IngestLimits | None = None,
                 authenticate: bool = False, metrics: AnalyzerMetrics | None = None) -> None:
        self.store, self.edges, self.authenticate = store, edges, authenticate
        self.metrics = metrics or AnalyzerMetrics()
        self.limits = limits or IngestLimits()
        self._streams = _Streams(self.limits)
        self._contact_written: dict[str, float] = {}  # edge_id -> when its last contact was written

    def Ingest(self, request_iterator: Iterator[ingest_pb2.FaceRecord], context: grpc.ServicerContext):  # noqa: N802
        caller = peer_role(context) if self.authenticate else None
        identity = caller.name if caller is not None and caller.role == "edge" else None
        if self.authenticate and identity not in self.edges:
            log.warning("ingest from client certificate %r refused: no edge certificate of an edge in "
                        "ANALYZER_EDGES", caller)
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "the client certificate is not the edge certificate of a trusted edge (ANALYZER_EDGES)")
        peer, key = peer_host(context.peer()), id(context)
        if not self._streams.open(key, peer, context):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"at most {self.limits.max_streams_per_peer} ingest streams per client at once")
        try:
            for record in request_iterator:
                self._streams.touch(key, context)
                if record.edge_id not in self.edges:
                    # Not REJECTED: the records are fine, the sender is not trusted. The edge keeps them and
                    # retries, so a configuration fix loses nothing.
                    log.warning("ingest from untrusted edge %r refused", record.edge_id[:64])
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, "this edge is not trusted here (ANALYZER_EDGES)")
                if self.authenticate and record.edge_id != identity:
                    # Not REJECTED either: one edge may not speak for another; a misconfigured one loses nothing.
                    log.warning("edge %r sent records as %r; refused", identity, record.edge_id[:64])
                    context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                  "edge_id differs from the client certificate's name")
                self._contact(record.edge_id)
                yield self._one(record, context)
        finally:
            self._streams.close(key, peer)

    def _contact(self, edge_id: str) -> None:
        """When each edge last delivered (GET /v1/edges): written at most once a second per edge, so a busy
        stream costs no write per record; lost writes only make the time a second older."""
        now = time.monotonic()
        if now - self._contact_written.get(edge_id, -CONTACT_EVERY_S) < CONTACT_EVERY_S:
            return
        self._contact_written[edge_id] = now
        try:
            self.store.r.hset(EDGES_SEEN, edge_id, int(time.time() * 1000))
        except redis.exceptions.OutOfMemoryError:  # a full Redis: the record's own write says so
            pass
        except redis.RedisError as exc:  # not the record's problem: it is stored (or refused) on its own
            log.warning("edge %s: last contact not recorded: %s", edge_id, exc)

    def _one(self, record: ingest_pb2.FaceRecord, context: grpc.ServicerContext) -> ingest_pb2.IngestAck:
        if record.HasField("track_closed"):
            return self._track_closed(record, context)
        try:
            fields = validate(record, self.limits.capture_window)
        except InvalidRecord as exc:
            self.metrics.faces_ingested.labels("rejected").inc()
            return Ack(face_id=record.face_id[:64], status=Ack.REJECTED, error=str(exc))
        except Exception:  # any other failure to read one record is that record's, not the stream's
            log.exception("record %r could not be validated", record.face_id[:64])
            self.metrics.faces_ingested.labels("rejected").inc()
            return Ack(face_id=record.face_id[:64], status=Ack.REJECTED, error="record could not be validated")
        try:
            result = self.store.ingest(record.face_id, fields)
        except redis.RedisError as exc:
            self._not_stored(exc, context)
        self.metrics.faces_ingested.labels(INGEST_RESULT[result]).inc()
        error = "face_id already stored with different content" if result is IngestResult.CONFLICT else ""
        return Ack(face_id=record.face_id, status=STATUS[result], error=error)


    def _track_closed(self, record: ingest_pb2.FaceRecord, context: grpc.ServicerContext) -> ingest_pb2.IngestAck:
        """A track ended at the edge: keep its summary (idempotent: a resent notice writes the same), unless
        an erasure took a face of the track meanwhile (acknowledged all the same: nothing to retry)."""
        try:
            fields = validate_track_closed(record, self.limits.capture_window)
        except InvalidRecord as exc:
            return Ack(face_id=record.face_id[:64], status=Ack.REJECTED, error=str(exc))
        try:
            self.store.close_track(record.track_id, fields, self.limits.track_ttl_s)
        except redis.RedisError as exc:
            self._not_stored(exc, context)
        return Ack(face_id=record.face_id, status=Ack.ACCEPTED)

    def _not_stored(self, exc: redis.RedisError, context: grpc.ServicerContext) -> NoReturn:
        """End the stream without acknowledging the record, so the edge keeps it and retries: nothing is lost.
        A full Redis is back-pressure (RESOURCE_EXHAUSTED, retry after a pushback), not an outage."""
        if isinstance(exc, redis.exceptions.OutOfMemoryError):
            log.warning("ingest refused: Redis is full (maxmemory); edges keep their faces and retry")
            self.metrics.ingest_refused_full.inc()
            context.set_trailing_metadata((("grpc-retry-pushback-ms", str(FULL_RETRY_MS)),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, REDIS_FULL)
        log.error("redis unavailable during ingest: %s", exc)
        self.metrics.redis_errors.labels("ingest").inc()
        context.abort(grpc.StatusCode.UNAVAILABLE, "storage unavailable; retry later")


def make_server(store: Store, port: int, edges: Collection[str], host: str = "127.0.0.1",
                limits: IngestLimits | None = None, tls: TlsFiles | None = None,
                reflection_on: bool = False, metrics: AnalyzerMetrics | None = None) -> tuple[grpc.Server, int]:
    """The Ingest server. tls: None, plaintext; with a certificate and key, TLS; with a CA too, mutual
    TLS (client certificates from that CA required, their role and name checked against the records'
    edge_id). reflection_on: serve gRPC reflection (lists the services to anyone who connects)."""
    limits = limits or IngestLimits()
    mutual = tls is not None and tls.ca is not None
    credentials = None if tls is None else server_credentials(tls, require_client_cert=mutual)  # bad files: fail now
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=limits.max_streams, thread_name_prefix="ingest"),
        options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)],
        # One thread per RPC: past this many, refuse at once rather than queue behind idle streams.
        maximum_concurrent_rpcs=limits.max_streams,
    )
    ingest_pb2_grpc.add_IngestServicer_to_server(IngestService(store, edges, limits, authenticate=mutual,
                                                                   metrics=metrics), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    name = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name
    health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    if reflection_on:
        reflection.enable_server_reflection((name, reflection.SERVICE_NAME), server)
    address = f"{host}:{port}"
    if credentials is None:
        return server, server.add_insecure_port(address)
    return server, server.add_secure_port(address, credentials)
