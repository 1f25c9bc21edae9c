"""Erasure: a person (with their sightings on request), one face, or a camera's time range, in Redis
and at every edge holding their pixels. The answer says what the cloud erased and which edges still
have to confirm; GET /v1/erasures/{id} follows them until `complete`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field

from cloud_analyzer.deps import AnalyzerDep, to_ms
from cloud_analyzer.erasure import ErasureReport
from service_common.guard import Caller, require
from service_common.ids import HEX32_PATTERN, ID_PATTERN

router = APIRouter(tags=["erasure"])


class EdgeErasure(BaseModel):
    faces: int = Field(description="faces whose enhancement layers and crops this edge must erase")
    status: str = Field(description="pending (retried until the edge answers) | confirmed")
    erased: int = Field(description="faces the edge held and erased")
    not_held: int = Field(description="faces the edge no longer held (evicted, expired or erased before)")
    last_error: str


class ErasureOut(BaseModel):
    erasure_id: str
    subject: str
    requested_at_ms: int
    identity_erased: bool
    templates: int = Field(description="enrolment templates erased")
    faces: int = Field(description="faces erased in the cloud: record, base layer, sighting and track indexes")
    events: int = Field(description="events naming them removed from the event stream")
    edges: dict[str, EdgeErasure]
    complete: bool = Field(description="every edge confirmed")


class IdentityErase(BaseModel):
    sightings: bool = Field(True, description="also erase every sighting of this person, here and at the edges")


class CameraErase(BaseModel):
    since: datetime
    until: datetime


def erasure_out(report: ErasureReport) -> ErasureOut:
    return ErasureOut(erasure_id=report.erasure_id, subject=report.subject, requested_at_ms=report.requested_at_ms,
                      identity_erased=report.identity_erased, templates=report.templates, faces=report.faces,
                      events=report.events, complete=report.complete,
                      edges={k: EdgeErasure(**v.__dict__) for k, v in report.edges.items()})


def _done(analyzer, caller: Caller, report: ErasureReport) -> ErasureOut:
    analyzer.edge_eraser.wake()
    caller.audit["detail"] = (f"erasure {report.erasure_id}: {report.templates} templates, {report.faces} faces, "
                              f"{report.events} events; edges {sorted(report.edges)}")
    return erasure_out(report)


@router.post("/v1/identities/{identity_id}/erase", status_code=202, response_model=ErasureOut)
def erase_identity(analyzer: AnalyzerDep, identity_id: Annotated[str, Path(pattern=HEX32_PATTERN)],
                   caller: Annotated[Caller, require("identities:write", "identity.erase")],
                   body: IdentityErase | None = None) -> ErasureOut:
    report = analyzer.erasures.identity(identity_id, (body or IdentityErase()).sightings, caller.key.key_id)
    if report is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    return _done(analyzer, caller, report)


@router.delete("/v1/faces/{face_id}", status_code=202, response_model=ErasureOut)
def erase_face(analyzer: AnalyzerDep, face_id: Annotated[str, Path(pattern=ID_PATTERN)],
               caller: Annotated[Caller, require("admin", "face.erase")]) -> ErasureOut:
    report = analyzer.erasures.face(face_id, caller.key.key_id)
    if report is None:
        raise HTTPException(404, f"face {face_id} not found")
    return _done(analyzer, caller, report)


@router.post("/v1/cameras/{camera_id}/erase", status_code=202, response_model=ErasureOut)
def erase_camera_range(analyzer: AnalyzerDep, camera_id: Annotated[str, Path(pattern=ID_PATTERN)], body: CameraErase,
                       caller: Annotated[Caller, require("admin", "camera.erase")]) -> ErasureOut:
    since, until = to_ms(body.since), to_ms(body.until)
    if since is None or until is None or since > until:
        raise HTTPException(422, "since must not be after until")
    return _done(analyzer, caller, analyzer.erasures.camera(camera_id, since, until, caller.key.key_id))


@router.get("/v1/erasures/{erasure_id}", response_model=ErasureOut,
            dependencies=[require("identities:write")])
def get_erasure(analyzer: AnalyzerDep, erasure_id: Annotated[str, Path(pattern=HEX32_PATTERN)]) -> ErasureOut:
    report = analyzer.erasures.get(erasure_id)
    if report is None:
        raise HTTPException(404, f"erasure {erasure_id} not found")
    return erasure_out(report)
