"""Frame -> faces -> coded faces: the edge's whole analysis path, independent of HTTP and gRPC."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

import facecodec
from facecodec.bitstream import CodedFace
from facecodec.codec.profiles import FaceCodec
from facecodec.frontend import FaceFrontEnd, decode_image
from facecodec.frontend.quality import FaceQuality, assess


@dataclass(frozen=True)
class EncodedFace:
    face_id: str
    camera_id: str
    captured_at: datetime
    box: tuple[float, float, float, float]
    score: float
    coded: CodedFace
    quality: FaceQuality

    @property
    def base_container(self) -> bytes:
        return self.coded.base_only().to_bytes()

    @property
    def full_container(self) -> bytes:
        return self.coded.to_bytes()


class EncodePipeline:
    def __init__(self, codec: FaceCodec, levels: int | None, front_end: FaceFrontEnd | None = None) -> None:
        self.codec = codec
        self.levels = codec.levels if levels is None else min(levels, codec.levels)
        self.front_end = front_end or FaceFrontEnd()
        # onnxruntime sessions are thread-safe, but one frame at a time keeps a 2-core edge responsive.
        self._lock = threading.Lock()

    def encode_frame(self, camera_id: str, frame: bytes, captured_at: datetime | None = None) -> list[EncodedFace]:
        """Decode the frame (ImageDecodeError if it is not an image) and code every face in it."""
        rgb = decode_image(frame)
        captured_at = captured_at or datetime.now(UTC)
        with self._lock:
            faces = self.front_end.faces(rgb)
            if not faces:
                return []
            descriptors = self.front_end.describe(np.stack([f.crop for f in faces]))
            return [
                EncodedFace(
                    face_id=uuid.uuid4().hex,
                    camera_id=camera_id,
                    captured_at=captured_at,
                    box=face.detection.box,
                    score=face.detection.score,
                    coded=self.codec.encode(face.crop, descriptor, self.levels),
                    quality=assess(face.detection.box, face.landmarks, face.crop),
                )
                for face, descriptor in zip(faces, descriptors)
            ]


CODEC_VERSION = facecodec.__version__
