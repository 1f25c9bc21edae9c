"""FastAPI dependencies: the analyzer's long-lived clients, injected per request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import numpy as np
from fastapi import Depends, HTTPException, Request, UploadFile

from cloud_analyzer.clusters import Clusters
from cloud_analyzer.decision import OpenSetPolicy
from cloud_analyzer.edge_eraser import EdgeEraser
from cloud_analyzer.erasure import Eraser
from cloud_analyzer.gallery import Gallery
from cloud_analyzer.settings import AnalyzerSettings
from cloud_analyzer.store import Store
from facecodec.codec.profiles import FaceCodec
from facecodec.frontend import (
    WEB_FORMATS,
    FaceFrontEnd,
    ImageDecodeError,
    ImageTooLarge,
    UnsupportedImageFormat,
    decode_image,
)
from facecodec.frontend.quality import FaceQuality, assess
from service_common.guard import Access


@dataclass
class Analyzer:
    settings: AnalyzerSettings
    store: Store
    gallery: Gallery
    front_end: FaceFrontEnd
    codec: FaceCodec
    policy: OpenSetPolicy
    access: Access
    erasures: Eraser
    edge_eraser: EdgeEraser
    clusters: Clusters | None = None  # unknown faces' anonymous clusters

    def face_from_image(self, data: bytes, label: str) -> tuple[np.ndarray, FaceQuality]:
        """The largest face's float descriptor and its quality."""
        face = self.front_end.largest_face(decoded_image(data, label))
        if face is None:
            raise HTTPException(422, f"{label}: no face found")
        descriptor = self.front_end.describe(face.crop)[0]
        return descriptor, assess(face.detection.box, face.landmarks, face.crop)

    def as_probe(self, descriptor: np.ndarray) -> np.ndarray:
        """What the edge would send for this face: searches by image are decided exactly like sightings.
        (Templates keep the float descriptor: coding only the probe side loses less than coding both,
        and the calibration is measured that way.)"""
        return self.codec.base.decode(self.codec.base.encode(descriptor))


def decoded_image(data: bytes, label: str) -> np.ndarray:
    """An uploaded image as RGB, or the HTTP error that says why it is not one."""
    try:
        return decode_image(data, WEB_FORMATS)
    except ImageTooLarge as exc:
        raise HTTPException(413, f"{label}: {exc}") from exc
    except UnsupportedImageFormat as exc:
        raise HTTPException(415, f"{label}: {exc}") from exc
    except ImageDecodeError as exc:
        raise HTTPException(400, f"{label}: {exc}") from exc


def get_analyzer(request: Request) -> Analyzer:
    return request.app.state.analyzer


AnalyzerDep = Annotated[Analyzer, Depends(get_analyzer)]


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{upload.filename or 'upload'}: larger than {limit} bytes")
    if not data:
        raise HTTPException(400, f"{upload.filename or 'upload'}: empty file")
    return data


def filters(**given: object) -> str:
    """The filters a listing was asked with, for its audit entry: `camera_id=door since=...`."""
    said = " ".join(f"{k}={v.isoformat() if isinstance(v, datetime) else v}" for k, v in given.items() if v)
    return said or "no filters"


def to_ms(t: datetime | None) -> int | None:
    """Milliseconds since the epoch; a time without a zone is UTC (not the server's local zone, which
    also cannot say year 1)."""
    if t is None:
        return None
    try:
        return int((t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp() * 1000)
    except (OverflowError, ValueError) as exc:
        raise HTTPException(422, "time out of range") from exc
