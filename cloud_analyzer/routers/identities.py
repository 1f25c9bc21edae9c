"""Enrolled identities: enrol from images, list, get, delete."""

from __future__ import annotations

import uuid
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Path, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from cloud_analyzer.deps import AnalyzerDep, read_upload
from cloud_analyzer.store import LEGACY_DESCRIPTOR_MODEL

router = APIRouter(prefix="/v1/identities", tags=["identities"])
IDENTITY_ID = r"^[0-9a-f]{32}$"
MAX_IMAGES = 32


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


@router.post("", status_code=201, response_model=Identity)
async def enrol(
    analyzer: AnalyzerDep,
    name: Annotated[str, Form(min_length=1, max_length=128)],
    images: Annotated[list[UploadFile], File(description="one or more face images")],
) -> Identity:
    if not 1 <= len(images) <= MAX_IMAGES:
        raise HTTPException(422, f"send 1 to {MAX_IMAGES} images")
    blobs = [await read_upload(image, analyzer.settings.max_image_bytes) for image in images]
    # All images are checked before anything is stored: a bad image enrols nothing.
    templates = []
    for i, (blob, image) in enumerate(zip(blobs, images)):
        label = image.filename or f"image {i}"
        descriptor, quality = await run_in_threadpool(analyzer.face_from_image, blob, label)
        if not quality.ok:
            raise HTTPException(422, f"{label}: face not good enough to enrol ({', '.join(quality.issues)}; "
                                     f"width {quality.face_width_px:.0f} px, sharpness {quality.sharpness:.0f}, "
                                     f"yaw {quality.yaw:.2f}); send a sharper, larger, frontal photo")
        templates.append(descriptor)
    identity_id = uuid.uuid4().hex
    analyzer.store.add_identity(identity_id, name.strip(), np.stack(templates),
                                analyzer.codec.spec.descriptor_model)
    return _identity(analyzer.store.identity(identity_id))


@router.get("", response_model=IdentityPage)
def list_identities(
    analyzer: AnalyzerDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> IdentityPage:
    rows, total = analyzer.store.identities(offset, limit)
    return IdentityPage(items=[_identity(r) for r in rows], total=total, offset=offset, limit=limit)


@router.get("/{identity_id}", response_model=Identity)
def get_identity(analyzer: AnalyzerDep, identity_id: Annotated[str, Path(pattern=IDENTITY_ID)]) -> Identity:
    row = analyzer.store.identity(identity_id)
    if row is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    return _identity(row)


@router.delete("/{identity_id}", status_code=204)
def delete_identity(analyzer: AnalyzerDep, identity_id: Annotated[str, Path(pattern=IDENTITY_ID)]) -> None:
    if not analyzer.store.delete_identity(identity_id):
        raise HTTPException(404, f"identity {identity_id} not found")
