"""Faces and cameras: what the cloud knows, all from base layers (events: cloud_analyzer/events/router.py)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel

from cloud_analyzer.deps import AnalyzerDep
from cloud_analyzer.store import to_sighting
from service_common.guard import require
from service_common.ids import ID_PATTERN
from service_common.pagination import CursorQuery, Page, page_of
from service_common.times import rfc3339_ms

router = APIRouter(tags=["faces"])


class FaceOut(BaseModel):
    face_id: str
    camera_id: str
    captured_at_ms: int
    bbox: list[float]
    status: str
    identity_id: str | None
    identity_name: str | None
    similarity: float | None
    error: str | None
    base_layer_bytes: int
    model_id: int
    rate_id: int
    edge_id: str
    enhancement_levels: int
    threshold: float | None
    fpir: float | None
    gallery_size: int | None
    fused_faces: int | None
    quality_issues: list[str] | None
    track_id: str | None
    decided_at_ms: int | None
    cluster_id: str | None = None  # unknown faces: their anonymous cluster
    threshold_override: bool = False  # the threshold was the identity's own (docs/corrections.md)
    rejected_by_negative: bool = False
    negative_similarity: float | None = None
    looks_child: bool | None = None  # flagged by the child-look probe (cloud_analyzer/minors.py); None: not assessed
    child_probability: float | None = None
    child_withheld: bool = False  # a name was withheld: the face looks like a child's
    corrected_action: str | None = None  # the latest correction: reject | reassign
    corrected_at: str | None = None
    corrected_by: str | None = None
    captured_at: str
    decided_at: str | None


class Camera(BaseModel):
    camera_id: str
    last_seen_ms: int
    last_seen_at: str
    sightings: int


@router.get("/v1/faces/{face_id}", response_model=FaceOut, dependencies=[require("sightings:read", "face.read")])
def get_face(analyzer: AnalyzerDep, face_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> FaceOut:
    face = analyzer.store.face(face_id)
    if face is None:
        raise HTTPException(404, f"face {face_id} not found")
    sighting = to_sighting(face)
    return FaceOut(
        **{k: v for k, v in asdict(sighting).items() if k in FaceOut.model_fields},
        error=face.get("error") or None, base_layer_bytes=len(face["base_layer"]), model_id=int(face["model_id"]),
        rate_id=int(face["rate_id"]), edge_id=face["edge_id"], enhancement_levels=int(face["enhancement_levels"]),
    )


@router.get("/v1/cameras", response_model=Page[Camera], dependencies=[require("sightings:read")])
def list_cameras(analyzer: AnalyzerDep, cursor: CursorQuery = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Page[Camera]:
    """Cameras that sent faces, most recently seen first."""
    rows = [Camera(camera_id=c, last_seen_ms=ts, last_seen_at=rfc3339_ms(ts), sightings=n)
            for c, ts, n in analyzer.store.cameras()]
    return page_of(rows, cursor, limit, lambda c: [c.last_seen_ms, c.camera_id], (int, str), descending=True)
