"""Unknown people: anonymous clusters of faces that matched no identity. List, get, merge two, split a
face off, and promote a cluster to a named identity in one call (its best faces become templates)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cloud_analyzer import face_ops
from cloud_analyzer.clusters import (
    CLUSTER_ID,
    Cluster,
    ClusterBusy,
    ClusterConflict,
    ClusterNotFound,
    Clusters,
    IdentityNotFound,
)
from cloud_analyzer.deps import AnalyzerDep
from cloud_analyzer.idempotency import Idempotency, IdempotencyHeader, fingerprint
from cloud_analyzer.minors import child_policy
from cloud_analyzer.routers.identities import Identity, _identity
from facecodec.openset import identity_template
from service_common.guard import Caller, require
from service_common.ids import HEX32_PATTERN, ID_PATTERN
from service_common.pagination import CursorQuery, Page, decode_cursor, encode_cursor
from service_common.times import rfc3339_ms

router = APIRouter(prefix="/v1/clusters", tags=["clusters"])
MAX_SCORE = 2**53  # sizes and times in ms: what a cursor may hold (Redis compares scores as doubles)
ClusterId = Annotated[str, Path(pattern=CLUSTER_ID)]


class ClusterOut(BaseModel):
    cluster_id: str
    descriptor_model: str
    size: int = Field(description="faces in the cluster")
    first_seen_ms: int
    last_seen_ms: int
    first_seen_at: str
    last_seen_at: str
    cameras: dict[str, int] = Field(description="camera_id -> faces of this cluster it saw")
    representative_face_ids: list[str] = Field(description="the faces closest to the cluster's centre, best first")


class ClusterDetail(ClusterOut):
    face_ids: list[str] = Field(description="member faces, most recent first (at most `faces` of them)")


class MergeIn(BaseModel):
    other: str = Field(pattern=CLUSTER_ID, description="the cluster whose faces join this one; it disappears")


class SplitIn(BaseModel):
    face_id: str = Field(pattern=ID_PATTERN, description="the face that leaves into a new cluster of its own")


class IntoIdentityIn(BaseModel):
    identity_id: str = Field(pattern=HEX32_PATTERN, description="the enrolled identity the cluster is")


class PromoteIn(BaseModel):
    name: str = Field(min_length=1, max_length=128)


def _refuse_a_child(analyzer, cluster_id: str) -> None:
    """Under ANALYZER_CHILD_POLICY=withhold, a cluster whose representative faces (their mean) look like a
    child's is not enrolled: 422 (minors.py). Erased faces are skipped; an unknown cluster is left to 404."""
    cluster = _clusters(analyzer).get(cluster_id)
    faces = []
    for face_id in cluster.representative_face_ids if cluster else ():
        try:
            faces.append(face_ops.stored_face(analyzer, face_id).template)
        except HTTPException:
            continue
    if not faces:
        return
    flagged, probability, verdict = child_policy(analyzer.settings).enrolment_problem(
        [identity_template(np.stack(faces))], cluster.descriptor_model)
    if flagged and verdict == "refuse":
        raise HTTPException(422, f"cluster {cluster_id} looks like a child (P(age < 13) = {probability[0]:.2f}): not "
                                 "enrolled under ANALYZER_CHILD_POLICY=withhold")


def _out(cluster: Cluster) -> ClusterOut:
    return ClusterOut(**{k: v for k, v in cluster.__dict__.items() if k in ClusterOut.model_fields},
                      first_seen_at=rfc3339_ms(cluster.first_seen_ms), last_seen_at=rfc3339_ms(cluster.last_seen_ms))


def _clusters(analyzer) -> Clusters:
    if analyzer.clusters is None:
        raise HTTPException(503, "unknown-face clustering is not running")
    return analyzer.clusters


def _call(fn, *args):
    try:
        return fn(*args)
    except (ClusterNotFound, IdentityNotFound) as exc:
        raise HTTPException(404, str(exc)) from exc
    except ClusterConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except ClusterBusy as exc:
        raise HTTPException(503, f"{exc}; retry later") from exc


@router.get("", response_model=Page[ClusterOut], dependencies=[require("sightings:read", "clusters.list")])
def list_clusters(
    analyzer: AnalyzerDep,
    order: Annotated[Literal["size", "recent"], Query(description="largest or most recently seen first")] = "size",
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[ClusterOut]:
    after = None
    if cursor:
        # The order is part of the position: a cursor from one order is refused by the other.
        kind, score, cluster_id = decode_cursor(cursor, (str, int, str))
        if kind != order or abs(score) > MAX_SCORE:
            raise HTTPException(422, "cursor: not a cursor this API gave out for this order")
        after = (score, cluster_id)
    rows, more = _clusters(analyzer).list(order, after, limit)
    return Page[ClusterOut](items=[_out(c) for c in rows],
                            next_cursor=encode_cursor([order, *more]) if more else None)


@router.get("/{cluster_id}", response_model=ClusterDetail, dependencies=[require("sightings:read", "cluster.view")])
def get_cluster(analyzer: AnalyzerDep, cluster_id: ClusterId,
                faces: Annotated[int, Query(ge=0, le=1000)] = 100) -> ClusterDetail:
    clusters = _clusters(analyzer)
    cluster = clusters.get(cluster_id)
    if cluster is None:
        raise HTTPException(404, f"cluster {cluster_id} not found")
    return ClusterDetail(**_out(cluster).model_dump(), face_ids=clusters.members(cluster_id, faces) if faces else [])


@router.post("/{cluster_id}/merge", response_model=ClusterOut)
def merge(analyzer: AnalyzerDep, cluster_id: ClusterId, body: MergeIn,
          caller: Annotated[Caller, require("identities:write", "cluster.merge")]) -> ClusterOut:
    merged = _call(_clusters(analyzer).merge, cluster_id, body.other)
    caller.audit["detail"] = f"cluster {body.other} merged into {cluster_id}: {merged.size} faces"
    return _out(merged)


@router.post("/{cluster_id}/split", status_code=201, response_model=ClusterOut)
def split(analyzer: AnalyzerDep, cluster_id: ClusterId, body: SplitIn,
          caller: Annotated[Caller, require("identities:write", "cluster.split")]) -> ClusterOut:
    """The face leaves `cluster_id` (whose centre is updated) into a new cluster of its own, answered."""
    caller.audit["face_id"] = body.face_id
    new = _call(_clusters(analyzer).split, cluster_id, body.face_id)
    caller.audit["detail"] = f"face split off cluster {cluster_id} into {new.cluster_id}"
    return _out(new)


@router.post("/{cluster_id}/promote", status_code=201, response_model=Identity)
async def promote(analyzer: AnalyzerDep, cluster_id: ClusterId, body: PromoteIn,
                  caller: Annotated[Caller, require("identities:write", "cluster.promote")],
                  idempotency_key: IdempotencyHeader = None) -> Identity | JSONResponse:
    """The cluster becomes a named identity: its best faces (at most 32) are the templates, every member's
    sighting is relabelled to it, and the cluster is deleted. With `Idempotency-Key`, a retry gets the
    first answer (the cluster is gone by then)."""
    name = body.name.strip()
    if not name:
        raise HTTPException(422, "name must not be blank")
    idem = Idempotency(analyzer.store.r, caller.key.key_id, f"cluster.promote:{cluster_id}", idempotency_key,
                       fingerprint(name))

    async def work() -> Identity:
        await run_in_threadpool(_refuse_a_child, analyzer, cluster_id)
        identity_id = uuid.uuid4().hex
        templates = await run_in_threadpool(_call, _clusters(analyzer).promote, cluster_id, identity_id, name,
                                            analyzer.store)
        caller.audit.update(identity_id=identity_id, detail=f"cluster {cluster_id} promoted: {templates} templates")
        return _identity(analyzer.store.identity(identity_id))

    return await idem.answer(caller.audit, 201, work)


@router.post("/{cluster_id}/merge-into-identity", response_model=Identity)
async def merge_into_identity(analyzer: AnalyzerDep, cluster_id: ClusterId, body: IntoIdentityIn,
                              caller: Annotated[Caller, require("identities:write", "cluster.merge_into_identity")]
                              ) -> Identity:
    """The cluster is an enrolled person: its best faces fill the identity's free template places (at most
    32 templates in all; its own stay), every member's sighting is relabelled to it, the cluster is deleted."""
    caller.audit["identity_id"] = body.identity_id
    await run_in_threadpool(_refuse_a_child, analyzer, cluster_id)
    added = await run_in_threadpool(_call, _clusters(analyzer).merge_into_identity, cluster_id, body.identity_id,
                                    analyzer.store)
    caller.audit["detail"] = f"cluster {cluster_id} merged into the identity: {added} templates added"
    return _identity(analyzer.store.identity(body.identity_id))
