"""gRPC FrameIngest: cameras stream frames to the edge, one ack per frame, through the REST path's pipeline.

The camera's token (metadata `authorization: Bearer <token>`) is checked when the stream opens: a
stream without a token valid for some camera ends UNAUTHENTICATED before a frame is read; each frame's
camera id must still be one the token is bound to (else a FORBIDDEN ack). At most
EDGE_MAX_FRAME_STREAMS streams are open at once (beyond, RESOURCE_EXHAUSTED) and a stream idle for
EDGE_FRAME_STREAM_IDLE_TIMEOUT_S is ended (edge_encoder/frame_streams.py): idle cameras cannot hold
the threads the cloud's Fetch and Erase need.

A bad frame is answered with an INVALID ack and the stream goes on: one corrupt frame from a camera
must not cut its feed. A frame that finds the edge saturated waits up to `wait_s` for a slot before
it is answered BUSY; meanwhile the stream is not read, so HTTP/2 flow control holds the camera back.

Over mutual TLS (`camera_certificates`) a stream is served only to a camera certificate (role `camera`,
service_common.certs): the cloud's and the edges' certificates from the same CA cannot post frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import grpc
from facecoding.v1 import frames_pb2, frames_pb2_grpc

from edge_encoder.admin import bearer
from edge_encoder.frame_streams import FrameStreams
from edge_encoder.metrics import EdgeMetrics
from edge_encoder.pipeline import FrameResult, TooManyCameras
from edge_encoder.stages import FrameDropped, Saturated, ShuttingDown
from facecodec.frontend import ImageDecodeError
from service_common import request_id
from service_common.access.camera_tokens import CameraTokens
from service_common.capture_time import CaptureTimeError, timestamp_ms
from service_common.ids import ID_RULE, is_id
from service_common.tls import peer_role

Ack = frames_pb2.FrameAck


Ingest = Callable[[str, bytes, datetime | None, float], FrameResult]  # EdgeNode.ingest_frame


class FrameIngestService(frames_pb2_grpc.FrameIngestServicer):
    def __init__(self, ingest: Ingest, metrics: EdgeMetrics, max_frame_bytes: int,
                 tokens: CameraTokens | None, wait_s: float = 30.0, streams: FrameStreams | None = None,
                 camera_certificates: bool = False) -> None:
        self.ingest, self.metrics, self.max_frame_bytes, self.wait_s = ingest, metrics, max_frame_bytes, wait_s
        self.tokens = tokens  # None: camera authentication explicitly off
        self.streams = streams if streams is not None else FrameStreams()  # empty (len 0) is falsy
        self.camera_certificates = camera_certificates  # mutual TLS: only camera-role certificates may post

    def SubmitFrames(self, request_iterator: Iterator[frames_pb2.Frame],  # noqa: N802
                     context: grpc.ServicerContext) -> Iterator[frames_pb2.FrameAck]:
        if self.camera_certificates:
            caller = peer_role(context)
            if caller is None or caller.role != "camera":
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "only a camera certificate may submit frames")
        token = bearer(dict(context.invocation_metadata()).get("authorization", ""))
        if self.tokens is not None and not self.tokens.cameras(token):
            self.metrics.frames_rejected.labels("401").inc()
            context.abort(grpc.StatusCode.UNAUTHENTICATED,
                          "camera token missing or wrong (metadata authorization: Bearer <camera token>)")
        if not self.streams.open(context):
            self.metrics.frames_rejected.labels("429").inc()
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"this edge holds {self.streams.max_streams} frame streams already; retry later")
        stream_id = request_id.from_grpc(context)  # the stream's x-request-id: on each of its frames' faces
        try:
            for frame in request_iterator:
                self.streams.busy(context)
                with request_id.bound(stream_id):  # bound per frame: a generator may resume in another context
                    ack = self._one(frame, token)
                self.streams.waiting(context)
                yield ack
        finally:
            self.streams.close(context)

    def _one(self, frame: frames_pb2.Frame, token: str | None) -> frames_pb2.FrameAck:
        camera = frame.camera_id
        if not is_id(camera):
            return Ack(camera_id=camera[:64], status=Ack.INVALID, error=f"camera_id must be {ID_RULE}")
        if self.tokens is not None and not self.tokens.allows(camera, token):
            self.metrics.frames_rejected.labels("401").inc()
            return Ack(camera_id=camera, status=Ack.FORBIDDEN,
                       error="camera token missing or wrong (metadata authorization: Bearer <token>)")
        if not frame.image or len(frame.image) > self.max_frame_bytes:
            self.metrics.frames_rejected.labels("400").inc()
            return Ack(camera_id=camera, status=Ack.INVALID,
                       error=f"image must be 1..{self.max_frame_bytes} bytes of JPEG, PNG or WebP")
        try:
            captured_at = _captured_at(frame)
            result = self.ingest(camera, frame.image, captured_at, self.wait_s)
        except (CaptureTimeError, ImageDecodeError) as exc:
            return Ack(camera_id=camera, status=Ack.INVALID, error=str(exc))
        except FrameDropped as exc:
            return Ack(camera_id=camera, status=Ack.DROPPED, error=str(exc))
        except (Saturated, ShuttingDown) as exc:
            return Ack(camera_id=camera, status=Ack.BUSY, error=str(exc))
        except TooManyCameras as exc:
            return Ack(camera_id=camera, status=Ack.FORBIDDEN, error=str(exc))
        return Ack(camera_id=camera, status=Ack.ACCEPTED, faces_detected=result.detected,
                   face_ids=[f.face_id for f in result.faces])


def _captured_at(frame: frames_pb2.Frame) -> datetime | None:
    """The frame's capture time; CaptureTimeError where a datetime cannot hold it (protobuf's own
    conversion raises on years past 9999). The window around now is the pipeline's to check."""
    if not frame.HasField("captured_at"):
        return None
    ms = timestamp_ms(frame.captured_at.seconds, frame.captured_at.nanos)
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise CaptureTimeError("captured_at is out of range") from exc
