"""Enrolled identities: enrol from images, add photos, list, get, delete, recogniser migration."""

from __future__ import annotations

import uuid
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Path, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from cloud_analyzer.deps import AnalyzerDep, read_upload
from cloud_analyzer.identities import LEGACY_DESCRIPTOR_MODEL
from service_common.guard import Caller, require
from service_common.ids import HEX32_PATTERN

router = APIRouter(prefix="/v1/identities", tags=["identities"])
READ = [require("identities:read")]
MAX_IMAGES = 32
MAX_OFFSET = 10**9  # Redis refuses offsets past a 64-bit integer; a client error is a 422, not an outage


class Identity(BaseModel):
    identity_id: str
    name: str
    templates: int
    created_at_ms: int
    descriptor_model: str = Field(description="recogniser the templates were made with; only its probes match")


class IdentityPage(BaseModel):
    items: list[Identity]
    total: int
    offset: int
    limit: int


def _identity(row: dict) -> Identity:
    return Identity(identity_id=row["identity_id"], name=row["name"], templates=int(row["templates"]),
                    created_at_ms=int(row["created_at_ms"]),
                    descriptor_model=row.get("descriptor_model", LEGACY_DESCRIPTOR_MODEL))


class Migration(BaseModel):
    descriptor_model: str = Field(description="the recogniser this analyzer enrols and matches with")
    needs_new_photos: list[Identity] = Field(
        description="identities enrolled with another recogniser: never matched until re-enrolled "
                    "(POST /v1/identities/{id}/templates); enrolment photos are not kept, by design")


async def _templates(analyzer, images: list[UploadFile]) -> np.ndarray:
    """Base-layer templates of every image, or an HTTP error naming the bad one; nothing is stored here,
    so a bad image anywhere enrols nothing."""
    if not 1 <= len(images) <= MAX_IMAGES:
        raise HTTPException(422, f"send 1 to {MAX_IMAGES} images")
    blobs = [await read_upload(image, analyzer.settings.max_image_bytes) for image in images]
    templates = []
    for i, (blob, image) in enumerate(zip(blobs, images)):
        label = image.filename or f"image {i}"
        descriptor, quality = await run_in_threadpool(analyzer.face_from_image, blob, label)
        if not quality.ok:
            raise HTTPException(422, f"{label}: face not good enough to enrol ({', '.join(quality.issues)}; "
                                     f"width {quality.face_width_px:.0f} px, sharpness {quality.sharpness:.0f}, "
                                     f"yaw {quality.yaw:.2f}); send a sharper, larger, frontal photo")
        templates.append(descriptor)
    return np.stack(templates)


@router.post("", status_code=201, response_model=Identity)
async def enrol(
    analyzer: AnalyzerDep,
    caller: Annotated[Caller, require("identities:write", "identity.enrol")],
    name: Annotated[str, Form(min_length=1, max_length=128)],
    images: Annotated[list[UploadFile], File(description="one or more face images")],
) -> Identity:
    name = name.strip()
    if not name:
        raise HTTPException(422, "name must not be blank")
    templates = await _templates(analyzer, images)
    identity_id = uuid.uuid4().hex
    analyzer.store.add_identity(identity_id, name, templates, analyzer.codec.spec.descriptor_model)
    caller.audit.update(identity_id=identity_id, detail=f"{len(templates)} templates")
    return _identity(analyzer.store.identity(identity_id))


@router.get("", response_model=IdentityPage, dependencies=READ)
def list_identities(
    analyzer: AnalyzerDep,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> IdentityPage:
    rows, total = analyzer.store.identities(offset, limit)
    return IdentityPage(items=[_identity(r) for r in rows], total=total, offset=offset, limit=limit)


@router.get("/migration", response_model=Migration, dependencies=READ)
def migration(analyzer: AnalyzerDep) -> Migration:
    """After a recogniser change: which identities still hold templates of another model."""
    current = analyzer.codec.spec.descriptor_model
    stale = [_identity(row) for row in analyzer.store.all_identities()
             if row.get("descriptor_model", LEGACY_DESCRIPTOR_MODEL) != current]
    return Migration(descriptor_model=current, needs_new_photos=stale)


@router.post("/{identity_id}/templates", response_model=Identity,
             dependencies=[require("identities:write", "identity.add_photos")])
async def add_photos(
    analyzer: AnalyzerDep,
    identity_id: Annotated[str, Path(pattern=HEX32_PATTERN)],
    images: Annotated[list[UploadFile], File(description="one or more face images of this person")],
) -> Identity:
    """More photos of an enrolled person. Templates of another recogniser are replaced, not mixed."""
    if analyzer.store.identity(identity_id) is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    templates = await _templates(analyzer, images)
    if not analyzer.store.add_templates(identity_id, templates, analyzer.codec.spec.descriptor_model, MAX_IMAGES):
        raise HTTPException(404, f"identity {identity_id} not found")
    return _identity(analyzer.store.identity(identity_id))


@router.get("/{identity_id}", response_model=Identity, dependencies=READ)
def get_identity(analyzer: AnalyzerDep, identity_id: Annotated[str, Path(pattern=HEX32_PATTERN)]) -> Identity:
    row = analyzer.store.identity(identity_id)
    if row is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    return _identity(row)


@router.delete("/{identity_id}", status_code=204)
def delete_identity(analyzer: AnalyzerDep, identity_id: Annotated[str, Path(pattern=HEX32_PATTERN)],
                    caller: Annotated[Caller, require("identities:write", "identity.delete")]) -> None:
    """Forget an enrolment: templates and metadata; the person's past sightings stay, unnamed. To erase
    those too (and their pixels at the edges), POST /v1/identities/{id}/erase."""
    report = analyzer.erasures.identity(identity_id, with_sightings=False, key_id=caller.key.key_id)
    if report is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    caller.audit["detail"] = f"erasure {report.erasure_id}: {report.templates} templates; sightings unnamed"
