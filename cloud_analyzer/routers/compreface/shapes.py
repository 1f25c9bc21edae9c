"""CompreFace's request and answer pieces: an image as multipart `file` (or JSON `{"file": "<base64>"}`),
its option query values, a face's `box`, the plugins, and the similarity scales of our decisions
(`cloud_analyzer/client_similarity.py`)."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated

from fastapi import Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from cloud_analyzer import face_ops
from cloud_analyzer.client_similarity import SimilarityScale, identification_scale, verification_scale
from cloud_analyzer.deps import Analyzer
from cloud_analyzer.face_ops import Face, Identification
from cloud_analyzer.routers.compreface.errors import VALIDATION, CompreFaceError, no_face
from cloud_analyzer.routers.inputs import is_json

DetProb = Annotated[float, Query(ge=0, le=1, description="faces detected with a lower score are left out")]
Limit = Annotated[int, Query(ge=0, le=100, description="largest faces answered (0: all)")]
Plugins = Annotated[str, Query(max_length=200, description="comma list: landmarks; calculator (if enabled)")]
Status = Annotated[bool, Query(description="add execution_time and plugins_versions")]


async def image(request: Request, field: str = "file") -> bytes:
    """The image of a request: multipart `field`, or JSON `{field: base64}`."""
    analyzer: Analyzer = request.app.state.analyzer
    limit = analyzer.settings.max_image_bytes
    if is_json(request):
        try:
            value = (await request.json()).get(field)
        except (ValueError, AttributeError) as exc:
            raise CompreFaceError(400, VALIDATION, "body: not a JSON object") from exc
        if not isinstance(value, str) or not value:
            raise CompreFaceError(400, 34, f"Missing request part: {field}")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CompreFaceError(400, VALIDATION, f"{field}: not valid base64") from exc
    else:
        form = await request.form(max_files=2, max_fields=4)
        upload = form.get(field)
        if not isinstance(upload, UploadFile):
            raise CompreFaceError(400, 34, f"Missing request part: {field}")
        data = await upload.read(limit + 1)
    if len(data) > limit:
        raise CompreFaceError(413, 0, f"{field}: larger than {limit} bytes")
    if not data:
        raise CompreFaceError(400, VALIDATION, f"{field}: empty file")
    return data


async def faces(analyzer: Analyzer, data: bytes, det_prob_threshold: float, limit: int = 0) -> list[Face]:
    """Every face the detector scores at `det_prob_threshold` or more (largest first, the `limit` largest);
    CompreFace's code 28 when there is none."""
    found = await run_in_threadpool(face_ops.faces_in_image, analyzer, data, "file", det_prob_threshold, limit)
    if not found:
        raise no_face()
    return found


def box(face: Face) -> dict:
    x1, y1, x2, y2 = face.box or (0, 0, 0, 0)
    return {"probability": round(face.detection_score or 0.0, 5), "x_max": round(x2), "y_max": round(y2),
            "x_min": round(x1), "y_min": round(y1)}


def plugins(analyzer: Analyzer, face: Face, asked: str, started: float, status: bool) -> dict:
    """What the face_plugins asked for add to a face (landmarks; the embedding only where enabled)."""
    wanted = {p.strip() for p in asked.split(",") if p.strip()}
    out: dict = {}
    if "landmarks" in wanted and face.landmarks is not None:
        out["landmarks"] = [[round(x), round(y)] for x, y in face.landmarks]
    if "calculator" in wanted and analyzer.settings.compreface_calculator:
        out["embedding"] = [round(float(v), 6) for v in face.probe]
    if status:
        out["execution_time"] = {"detector": round((time.perf_counter() - started) * 1000, 1)}
    return out


def versions(analyzer: Analyzer) -> dict:
    return {"detector": "facecodec-frontend", "calculator": analyzer.codec.spec.descriptor_model}


def identification(analyzer: Analyzer, found: Identification) -> SimilarityScale:
    s = analyzer.settings
    codec = analyzer.codec
    counts = analyzer.gallery.enrol_counts(codec.spec.descriptor_model)
    return identification_scale(codec.open_set_calibration, counts, found.decision.probe_frames,
                                found.decision.threshold, found.decision.fpir,
                                s.compreface_match_similarity, s.compreface_unknown_similarity)


def verification(analyzer: Analyzer, enrol_images: int = 1) -> SimilarityScale:
    s = analyzer.settings
    return verification_scale(analyzer.codec.open_set_calibration, s.verify_far, enrol_images,
                              s.compreface_match_similarity, s.compreface_unknown_similarity)
