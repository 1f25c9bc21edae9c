"""FaceRecords as an edge sends them to the analyzer's Ingest, for the analyzer, uploader and TLS tests."""

from __future__ import annotations

import time
import uuid

import numpy as np
from facecoding.v1 import ingest_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from facecodec.codec.profiles import codec_by_name
from facecodec.frontend import decode_image


def valid_record(camera: str = "cam-a", captured_ms: int | None = None, seed: int = 0) -> ingest_pb2.FaceRecord:
    """What an edge sends: a real base layer (of a random descriptor), captured just now."""
    descriptor = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    coded = codec_by_name("baseline").encode_base(descriptor / np.linalg.norm(descriptor))
    captured = Timestamp()
    captured.FromMilliseconds(captured_ms if captured_ms is not None else int(time.time() * 1000))
    return ingest_pb2.FaceRecord(
        face_id=uuid.uuid4().hex, camera_id=camera, captured_at=captured,
        bbox=ingest_pb2.BoundingBox(x1=10, y1=20, x2=110, y2=140), detection_score=0.9, model_id=coded.model_id,
        rate_id=coded.rate_id, codec_version="test", base_layer=coded.base_only().to_bytes(), edge_id="edge-t",
        edge_address="127.0.0.1:1", enhancement_levels=4,
    )


def variant(good: ingest_pb2.FaceRecord, **changes) -> ingest_pb2.FaceRecord:
    """A copy of `good` under a new face id with `changes` applied (message fields copied in)."""
    r = ingest_pb2.FaceRecord()
    r.CopyFrom(good)
    r.face_id = uuid.uuid4().hex
    for k, v in changes.items():
        if isinstance(v, Message):
            getattr(r, k).CopyFrom(v)
        else:
            setattr(r, k, v)
    return r


def record(front_end, path, camera: str, ts_ms: int, face_id: str | None = None,
           issues: tuple[str, ...] = ()) -> ingest_pb2.FaceRecord:
    """The record of the largest face in the photo at `path` (base layer of its real descriptor)."""
    face = front_end.largest_face(decode_image(path.read_bytes()))
    codec = codec_by_name("baseline")
    coded = codec.encode(face.crop, front_end.describe(face.crop)[0], levels=0)
    captured = Timestamp()
    captured.FromMilliseconds(ts_ms)
    return ingest_pb2.FaceRecord(
        face_id=face_id or uuid.uuid4().hex, camera_id=camera, captured_at=captured,
        bbox=ingest_pb2.BoundingBox(x1=1, y1=2, x2=3, y2=4), detection_score=0.9, model_id=coded.model_id,
        rate_id=coded.rate_id, codec_version="test", base_layer=coded.to_bytes(), edge_id="edge-t",
        edge_address="127.0.0.1:1", enhancement_levels=0,
        quality=ingest_pb2.FaceQuality(face_width_px=100, sharpness=100, yaw=0.1, issues=list(issues)),
    )


def recent_ms(days: int) -> int:
    """A capture time `days` ago, whole seconds: inside the analyzer's window, whenever the test runs."""
    return (int(time.time()) - days * 86_400) * 1000
