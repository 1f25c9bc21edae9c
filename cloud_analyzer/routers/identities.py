"""Enrolled identities: enrol (images, base layers or stored faces), list (by page or by exact name), get,
rename and change metadata, delete, recogniser migration. Templates: routers/templates.py."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Path, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from cloud_analyzer import face_ops
from cloud_analyzer.deps import AnalyzerDep
from cloud_analyzer.idempotency import Idempotency, IdempotencyHeader, fingerprint
from cloud_analyzer.identities import LEGACY_DESCRIPTOR_MODEL, TemplateInfo
from cloud_analyzer.minors import child_policy
from cloud_analyzer.routers.inputs import FaceSources, is_json, json_body, template_faces
from service_common.guard import Caller, require
from service_common.ids import HEX32_PATTERN
from service_common.pagination import CursorQuery, Page, decode_cursor, encode_cursor
from service_common.times import rfc3339_ms

router = APIRouter(prefix="/v1/identities", tags=["identities"])
READ = [require("identities:read")]
MAX_IMAGES = 32
MAX_NAME = 128
MAX_METADATA_BYTES = 4096  # free-form, but an identity record, not a document store
IdentityId = Annotated[str, Path(pattern=HEX32_PATTERN)]


class TemplateWarning(BaseModel):
    template_id: str
    similarity: float = Field(description="cosine of this template to the mean of the identity's others")
    threshold: float = Field(description="below it, the template looks no more like the identity than the "
                                         "closest 1% of strangers do (docs/api.md, templates)")
    message: str


class ChildFlag(BaseModel):
    index: int = Field(description="which of the request's photos (0-based, in the order sent)")
    child_probability: float = Field(description="the child-look probe's P(age < 13)")
    message: str


class Template(BaseModel):
    template_id: str
    source: str = Field(description="`upload` (image or base layer), `face` (a confirmed sighting), `cluster` "
                                    "(a merged or promoted unknown cluster), `legacy` (stored before ids)")
    face_id: str | None = None
    quality: float | None = Field(None, description="0-1 face quality score, where known")
    added_at: str | None
    added_at_ms: int


class Identity(BaseModel):
    identity_id: str
    name: str
    templates: int
    created_at: str | None
    created_at_ms: int
    descriptor_model: str = Field(description="recogniser the templates were made with; only its probes match")
    metadata: dict[str, Any] = Field(default_factory=dict)
    added: list[Template] = Field(default_factory=list, description="templates this request added")
    warnings: list[TemplateWarning] = Field(
        default_factory=list, description="added templates that are likely another person (not refused)")
    child_flags: list[ChildFlag] = Field(
        default_factory=list, description="photos that look like a child's, accepted because ANALYZER_CHILD_POLICY "
        "is `strict` (under `withhold` they are refused: 422); README, Children")


class Migration(BaseModel):
    descriptor_model: str = Field(description="the recogniser this analyzer enrols and matches with")
    needs_new_photos: list[Identity] = Field(
        description="identities enrolled with another recogniser: never matched until re-enrolled "
                    "(POST /v1/identities/{id}/templates); enrolment photos are not kept, by design")


def checked_metadata(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("metadata must be a JSON object")
    if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata larger than {MAX_METADATA_BYTES} bytes as JSON")
    return value


def checked_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise HTTPException(422, "name must not be blank")
    if len(name) > MAX_NAME:
        raise HTTPException(422, f"name longer than {MAX_NAME} characters")
    return name


class EnrolJson(FaceSources):
    name: str = Field(min_length=1, max_length=MAX_NAME)
    metadata: dict[str, Any] = Field(default_factory=dict)
    _metadata = field_validator("metadata")(checked_metadata)


class IdentityPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=MAX_NAME, description="the new name")
    metadata: dict[str, Any] | None = Field(
        None, description="merged into the metadata (RFC 7396): a key set to null is removed")


def template_out(info: TemplateInfo) -> Template:
    return Template(template_id=info.template_id, source=info.source, face_id=info.face_id, quality=info.quality,
                    added_at=rfc3339_ms(info.added_at_ms), added_at_ms=info.added_at_ms)


def _identity(row: dict) -> Identity:
    return Identity(identity_id=row["identity_id"], name=row["name"], templates=int(row["templates"]),
                    created_at=rfc3339_ms(int(row["created_at_ms"])), created_at_ms=int(row["created_at_ms"]),
                    descriptor_model=row.get("descriptor_model", LEGACY_DESCRIPTOR_MODEL),
                    metadata=json.loads(row.get("metadata") or "{}"))


def outliers(analyzer, others: list[np.ndarray], added: list[tuple[TemplateInfo, np.ndarray]]
             ) -> list[TemplateWarning]:
    """Warnings for added templates far from the identity's others (with none before: from each other)."""
    calibration = analyzer.codec.open_set_calibration
    warnings = []
    for n, (info, vector) in enumerate(added):
        rest = others or [v for m, (_, v) in enumerate(added) if m != n]
        if (far := face_ops.far_from_others(calibration, rest, vector)) is not None:
            warnings.append(TemplateWarning(
                template_id=info.template_id, similarity=round(far[0], 4), threshold=round(far[1], 4),
                message="this face is far from the identity's other templates: likely another person; "
                        "remove it (DELETE .../templates/{template_id}) if so"))
    return warnings


def child_flags(analyzer, faces: list) -> list[ChildFlag]:
    """Enrolment photos that look like a child's: 422 under the `withhold` policy (nothing is stored),
    else one flag each (minors.py)."""
    flagged, probabilities, verdict = child_policy(analyzer.settings).enrolment_problem(
        [face.template for face, _ in faces], analyzer.codec.spec.descriptor_model)
    if flagged and verdict == "refuse":
        raise HTTPException(422, f"photo {flagged[0]} looks like a child's (P(age < 13) = {probabilities[0]:.2f}); "
                                 "children are not enrolled under ANALYZER_CHILD_POLICY=withhold (README, Children)")
    return [ChildFlag(index=i, child_probability=p, message="looks like a child's: the recogniser confuses children, "
                                                            "and this identity is named only at the child threshold")
            for i, p in zip(flagged, probabilities)]


async def _upload_print(images: list[UploadFile] | None) -> list[bytes]:
    blobs = []
    for image in images or []:
        blobs.append(await image.read())
        await image.seek(0)
    return blobs


@router.post("", status_code=201, response_model=Identity)
async def enrol(
    request: Request,
    analyzer: AnalyzerDep,
    caller: Annotated[Caller, require("identities:write", "identity.enrol")],
    idempotency_key: IdempotencyHeader = None,
    name: Annotated[str | None, Form(max_length=MAX_NAME)] = None,
    metadata: Annotated[str | None, Form(max_length=MAX_METADATA_BYTES, description="a JSON object")] = None,
    images: Annotated[list[UploadFile] | None, File(description="one or more face images")] = None,
) -> Identity | JSONResponse:
    """Multipart (`name`, `metadata`, `images`) or JSON (`name`, `metadata`, `base_layer` / `base_layers` /
    `face_ids`). With `Idempotency-Key`, a retry gets the first answer instead of a second identity."""
    sources: FaceSources | None = None
    if is_json(request):
        body = await json_body(request, EnrolJson)
        name, meta, sources = body.name, body.metadata, body
    else:
        try:
            meta = checked_metadata(json.loads(metadata)) if metadata else {}
        except ValueError as exc:
            raise HTTPException(422, f"metadata: {exc}") from exc
    name = checked_name(name)
    idem = Idempotency(analyzer.store.r, caller.key.key_id, "identity.enrol", idempotency_key,
                       fingerprint(name, meta, await _upload_print(images), sources.model_dump() if sources else None))

    async def work() -> Identity:
        faces = await template_faces(analyzer, images, sources)
        flags = child_flags(analyzer, faces)
        identity_id = uuid.uuid4().hex
        infos = [info for _, info in faces]
        analyzer.store.add_identity(identity_id, name, np.stack([f.template for f, _ in faces]),
                                    analyzer.codec.spec.descriptor_model, infos, meta)
        out = _identity(analyzer.store.identity(identity_id))
        out.added = [template_out(i) for i in infos]
        out.warnings = outliers(analyzer, [], [(i, f.template) for f, i in faces])
        out.child_flags = flags
        caller.audit.update(identity_id=identity_id, detail=f"{len(faces)} templates")
        return out

    return await idem.answer(caller.audit, 201, work)


@router.get("", response_model=Page[Identity], dependencies=READ)
def list_identities(
    analyzer: AnalyzerDep,
    name: Annotated[str | None, Query(min_length=1, max_length=MAX_NAME, description="exact name only")] = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[Identity]:
    """Oldest first. `name`: only identities of exactly this name (names need not be unique)."""
    after = tuple(decode_cursor(cursor, (int, str))) if cursor else None
    if name is None:
        rows, more = analyzer.store.identities_after(after, limit)
    else:
        named = sorted(((int(r["created_at_ms"]), r["identity_id"]), r)
                       for r in analyzer.store.rows(analyzer.store.ids_by_name(name)))
        later = [row for position, row in named if after is None or position > after]
        rows, more = later[:limit], len(later) > limit
    items = [_identity(r) for r in rows]
    last = items[-1] if items else None
    return Page[Identity](items=items,
                          next_cursor=encode_cursor([last.created_at_ms, last.identity_id]) if more and last else None)


@router.get("/migration", response_model=Migration, dependencies=READ)
def migration(analyzer: AnalyzerDep) -> Migration:
    """After a recogniser change: which identities still hold templates of another model."""
    current = analyzer.codec.spec.descriptor_model
    stale = [_identity(row) for row in analyzer.store.all_identities()
             if row.get("descriptor_model", LEGACY_DESCRIPTOR_MODEL) != current]
    return Migration(descriptor_model=current, needs_new_photos=stale)


@router.get("/{identity_id}", response_model=Identity, dependencies=READ)
def get_identity(analyzer: AnalyzerDep, identity_id: IdentityId) -> Identity:
    row = analyzer.store.identity(identity_id)
    if row is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    return _identity(row)


@router.patch("/{identity_id}", response_model=Identity)
def update_identity(analyzer: AnalyzerDep, identity_id: IdentityId, body: IdentityPatch,
                    caller: Annotated[Caller, require("identities:write", "identity.update")]) -> Identity:
    """Rename, and/or merge keys into the metadata (a key set to null is removed)."""
    row = analyzer.store.identity(identity_id)
    if row is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    name = checked_name(body.name) if body.name is not None else None
    metadata = None
    if body.metadata is not None:
        merged = {**json.loads(row.get("metadata") or "{}"), **body.metadata}
        try:
            metadata = checked_metadata({k: v for k, v in merged.items() if v is not None})
        except ValueError as exc:
            raise HTTPException(422, f"metadata: {exc}") from exc
    if not analyzer.store.update_identity(identity_id, name, metadata):
        raise HTTPException(404, f"identity {identity_id} not found")
    changed = [what for what, value in (("name", name), ("metadata", metadata)) if value is not None]
    caller.audit["detail"] = f"changed {', '.join(changed) or 'nothing'}"
    return _identity(analyzer.store.identity(identity_id))


@router.delete("/{identity_id}", status_code=204)
def delete_identity(analyzer: AnalyzerDep, identity_id: IdentityId,
                    caller: Annotated[Caller, require("identities:write", "identity.delete")]) -> None:
    """Forget an enrolment: templates and metadata; the person's past sightings stay, unnamed. To erase
    those too (and their pixels at the edges), POST /v1/identities/{id}/erase."""
    report = analyzer.erasures.identity(identity_id, with_sightings=False, key_id=caller.key.key_id)
    if report is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    caller.audit["detail"] = f"erasure {report.erasure_id}: {report.templates} templates; sightings unnamed"
