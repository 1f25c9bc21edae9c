"""Detection only: where the faces of an image are and how good they are. No descriptor is made, nothing
is compared or stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from cloud_analyzer import face_ops
from cloud_analyzer.deps import AnalyzerDep, read_upload
from service_common.guard import Caller, require

router = APIRouter(prefix="/v1/detect", tags=["search"])


class Quality(BaseModel):
    score: float = Field(description="0-1: size, sharpness, head turn (facecodec.frontend.quality)")
    face_width_px: float
    sharpness: float
    yaw: float
    issues: list[str] = Field(description="too_small / blurred / turned_away: not good enough to enrol or name")


class DetectedFace(BaseModel):
    box: list[float] = Field(description="x1, y1, x2, y2 in image pixels")
    landmarks: list[list[float]] = Field(description="5 points: eyes, nose tip, mouth corners")
    detection_score: float
    quality: Quality


class Detection(BaseModel):
    faces: list[DetectedFace] = Field(description="largest first; empty when there is none")


def detected_faces(analyzer, data: bytes, label: str) -> list[DetectedFace]:
    return [DetectedFace(box=[round(float(v), 1) for v in f.detection.box],
                         landmarks=[[round(float(x), 1), round(float(y), 1)] for x, y in f.landmarks],
                         detection_score=round(float(f.detection.score), 4),
                         quality=Quality(score=round(q.score, 4), face_width_px=round(q.face_width_px, 1),
                                         sharpness=round(q.sharpness, 1), yaw=round(q.yaw, 3), issues=list(q.issues)))
            for f, q in face_ops.detected(analyzer, data, label)]


@router.post("", response_model=Detection)
async def detect(analyzer: AnalyzerDep, caller: Annotated[Caller, require("faces:detect", "detect")],
                 image: Annotated[UploadFile, File(description="one image")]) -> Detection:
    blob = await read_upload(image, analyzer.settings.max_image_bytes)
    faces = await run_in_threadpool(detected_faces, analyzer, blob, image.filename or "image")
    caller.audit["detail"] = f"{len(faces)} faces"
    return Detection(faces=faces)
