"""Erasure: a person (with their sightings on request), one face, or a camera's time range, in Redis
and at every edge holding their pixels. The answer says what the cloud erased and which edges still
have to confirm; GET /v1/erasures/{id} follows them until `complete`."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from cloud_analyzer.deps import Analyzer, AnalyzerDep, to_ms
from cloud_analyzer.erasure import ErasureReport
from cloud_analyzer.identities import LEGACY_DESCRIPTOR_MODEL
from cloud_analyzer.person_search import PersonSearch
from service_common.guard import Caller, require
from service_common.ids import HEX32_PATTERN, ID_PATTERN
from service_common.pagination import CursorQuery, Page, decode_cursor, encode_cursor
from service_common.redis_keys import mean_key
from service_common.times import Timestamp, rfc3339_ms

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
    requested_at: str
    identity_erased: bool
    templates: int = Field(description="enrolment templates erased")
    faces: int = Field(description="faces erased in the cloud: record, base layer, sighting and track indexes")
    events: int = Field(description="events naming them removed from the event stream")
    edges: dict[str, EdgeErasure]
    complete: bool = Field(description="every edge confirmed")
    matched_faces: int = Field(0, description="identity erasures: unnamed faces found by biometric search and "
                                              "erased (unknown and low-quality faces, matched clusters' members)")
    pending_faces: int = Field(0, description="identity erasures: of matched_faces, those still pending in the "
                                              "ingest stream (not yet decided by a worker)")
    clusters: int = Field(0, description="identity erasures: unknown-face clusters matched and erased whole")
    match_threshold: float | None = Field(
        None, description="identity erasures: the cosine a face had to reach against the person's template (the "
                          "analyzer's decision threshold); null: no search made")


class IdentityErase(BaseModel):
    sightings: bool = Field(True, description="also erase every sighting of this person, here and at the edges")


class CameraErase(BaseModel):
    since: Timestamp = Field(description="RFC 3339, inclusive (no zone: UTC)")
    until: Timestamp = Field(description="RFC 3339, inclusive (no zone: UTC)")


def erasure_out(report: ErasureReport) -> ErasureOut:
    return ErasureOut(erasure_id=report.erasure_id, subject=report.subject, requested_at_ms=report.requested_at_ms,
                      requested_at=rfc3339_ms(report.requested_at_ms),
                      identity_erased=report.identity_erased, templates=report.templates, faces=report.faces,
                      events=report.events, complete=report.complete, matched_faces=report.matched_faces,
                      pending_faces=report.pending_faces, clusters=report.clusters,
                      match_threshold=report.match_threshold,
                      edges={k: EdgeErasure(**v.__dict__) for k, v in report.edges.items()})


def _done(analyzer, caller: Caller, report: ErasureReport) -> ErasureOut:
    analyzer.edge_eraser.wake()
    matched = ("" if report.match_threshold is None else f" ({report.matched_faces} unnamed "
               f"({report.pending_faces} pending), "
               f"{report.clusters} clusters at cosine {report.match_threshold})")
    caller.audit["detail"] = (f"erasure {report.erasure_id}: {report.templates} templates, {report.faces} faces"
                              f"{matched}, {report.events} events; edges {sorted(report.edges)}")
    return erasure_out(report)


@router.post("/v1/identities/{identity_id}/erase", status_code=202, response_model=ErasureOut)
def erase_identity(analyzer: AnalyzerDep, identity_id: Annotated[str, Path(pattern=HEX32_PATTERN)],
                   caller: Annotated[Caller, require("identities:write", "identity.erase")],
                   body: IdentityErase | None = None) -> ErasureOut:
    sightings = (body or IdentityErase()).sightings
    person = person_search(analyzer, identity_id) if sightings else None
    report = analyzer.erasures.identity(identity_id, sightings, caller.key.key_id, person)
    if report is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    return _done(analyzer, caller, report)


def person_search(analyzer: Analyzer, identity_id: str) -> PersonSearch | None:
    """The search for this identity's unnamed faces, at the threshold the analyzer decides at now (the
    gallery with the person in it); None if there is no such identity."""
    row = analyzer.store.identity(identity_id)
    template = analyzer.store.r.get(mean_key(identity_id))
    if row is None or template is None:
        return None
    probe, model = np.frombuffer(template, "<f4"), row.get("descriptor_model", LEGACY_DESCRIPTOR_MODEL)
    view, _ = analyzer.gallery.search(probe, model, 1)
    calibration = analyzer.codec.open_set_calibration

    def threshold_for(frames: int) -> float:
        return analyzer.policy.operating_point(calibration, view.enrol_counts, frames, view.version)[0]

    return PersonSearch(analyzer.store.r, probe, model, threshold_for, analyzer.clusters)


class MatchedFace(BaseModel):
    face_id: str
    camera_id: str
    captured_at_ms: int
    captured_at: str
    status: str
    similarity: float = Field(description="cosine to the person's template")
    edge_id: str


class MatchedCluster(BaseModel):
    cluster_id: str
    size: int
    similarity: float = Field(description="cosine of its centroid to the person's template")
    threshold: float = Field(description="what a fused probe of this many faces must reach")


class ErasurePreview(BaseModel):
    identity_id: str
    templates: int
    named_faces: list[str] = Field(description="sightings named as this person")
    match_threshold: float = Field(description="the cosine an unnamed face must reach (the decision threshold)")
    matched_faces: list[MatchedFace] = Field(description="unnamed faces at or above it, best first: decided ones "
                                                        "and those still pending in the ingest stream")
    pending_faces: int = Field(description="of matched_faces, those still pending (status `pending`)")
    clusters: list[MatchedCluster] = Field(description="unknown-face clusters whose centroid reaches the threshold "
                                                       "for their size: erased whole")
    cluster_faces: list[str] = Field(description="the members of those clusters")
    edges: dict[str, int] = Field(description="faces each edge would be asked to erase")


@router.get("/v1/identities/{identity_id}/erasure-preview", response_model=ErasurePreview)
def preview_identity_erasure(analyzer: AnalyzerDep, identity_id: Annotated[str, Path(pattern=HEX32_PATTERN)],
                             caller: Annotated[Caller, require("identities:write", "identity.erase_preview")]
                             ) -> ErasurePreview:
    """What `POST /v1/identities/{id}/erase` (with sightings) would erase now; changes nothing."""
    person = person_search(analyzer, identity_id)
    row = analyzer.store.identity(identity_id)
    if person is None or row is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    named = analyzer.erasures.identity_faces(identity_id)
    matches = person.find()
    cluster_faces = [f for c in matches.clusters for f in c.face_ids]
    edges = analyzer.erasures.edges_of(list(dict.fromkeys([*named, *matches.face_ids()])))
    caller.audit.update(identity_id=identity_id, detail=(
        f"preview: {len(named)} named, {len(matches.faces)} unnamed faces "
        f"({len(matches.pending_ids())} pending) and {len(matches.clusters)} clusters "
        f"at cosine {matches.threshold:.4f}"))
    return ErasurePreview(
        identity_id=identity_id, templates=int(row.get("templates", 0)), named_faces=named,
        match_threshold=round(matches.threshold, 4),
        matched_faces=[MatchedFace(**{**f.__dict__, "similarity": round(f.similarity, 4),
                                         "captured_at": rfc3339_ms(f.captured_at_ms)}) for f in matches.faces],
        pending_faces=len(matches.pending_ids()),
        clusters=[MatchedCluster(cluster_id=c.cluster_id, size=c.size, similarity=round(c.similarity, 4),
                                 threshold=round(c.threshold, 4)) for c in matches.clusters],
        cluster_faces=cluster_faces, edges={k: len(v) for k, v in edges.items()})


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
    if since < 0:  # a range reaching before 1970 is a mistake (no face is that old), not a way to say "all"
        raise HTTPException(422, "since is before 1970-01-01: give the first moment to erase")
    return _done(analyzer, caller, analyzer.erasures.camera(camera_id, since, until, caller.key.key_id))


@router.get("/v1/erasures", response_model=Page[ErasureOut], dependencies=[require("identities:write")])
def list_erasures(analyzer: AnalyzerDep, cursor: CursorQuery = None,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Page[ErasureOut]:
    """Every erasure, newest first, with each edge's status (`complete` once every edge confirmed)."""
    after = tuple(decode_cursor(cursor, (int, str))) if cursor else None
    if after and not 0 <= after[0] <= 2**53:  # what a request time can be; Redis compares doubles
        raise HTTPException(422, "cursor: not a cursor this API gave out")
    reports, following = analyzer.erasures.listing(after, limit)  # type: ignore[arg-type]
    return Page[ErasureOut](items=[erasure_out(r) for r in reports],
                            next_cursor=encode_cursor(list(following)) if following else None)


@router.get("/v1/erasures/{erasure_id}", response_model=ErasureOut,
            dependencies=[require("identities:write")])
def get_erasure(analyzer: AnalyzerDep, erasure_id: Annotated[str, Path(pattern=HEX32_PATTERN)]) -> ErasureOut:
    report = analyzer.erasures.get(erasure_id)
    if report is None:
        raise HTTPException(404, f"erasure {erasure_id} not found")
    return erasure_out(report)
