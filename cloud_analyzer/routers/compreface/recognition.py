"""CompreFace's recognition service over our identities: a subject is an identity's name (the oldest
identity of that name, when several share it), an example (`image_id`) is one of its templates (its
template id). Adding an example enrols as `POST /v1/identities/{id}/templates` does (largest face, the
quality gate); recognize is `POST /v1/search` for every face; verify against an example is
`POST /v1/verify` with that template as the reference. Enrolment photos are not kept, so there is no
`.../img` to download."""

from __future__ import annotations

import math
import time
import uuid
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Body, File, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from cloud_analyzer import face_ops
from cloud_analyzer.deps import Analyzer, AnalyzerDep
from cloud_analyzer.minors import child_policy
from cloud_analyzer.routers.compreface import shapes
from cloud_analyzer.routers.compreface.errors import (
    IMAGE_NOT_FOUND,
    SUBJECT_ALREADY_EXISTS,
    SUBJECT_NOT_FOUND,
    VALIDATION,
    CompreFaceError,
    CompreFaceRoute,
)
from cloud_analyzer.routers.compreface.models import (
    DeletedOut,
    ExampleOut,
    ExamplesPage,
    RecognizeOut,
    SubjectOut,
    SubjectsOut,
    UpdatedOut,
    VerifyExampleOut,
    answers,
)
from cloud_analyzer.routers.identities import MAX_IMAGES, MAX_NAME
from cloud_analyzer.routers.inputs import upload_template
from cloud_analyzer.templates import TemplateInfo
from service_common.guard import Caller, require

router = APIRouter(prefix="/recognition", route_class=CompreFaceRoute)  # included routes keep their own class
Subject = Annotated[str, Query(min_length=1, max_length=MAX_NAME)]
ImageFile = Annotated[UploadFile | None, File(description="the image (or JSON {\"file\": \"<base64>\"})")]
HEX32 = frozenset("0123456789abcdef")


class SubjectIn(BaseModel):
    subject: str = Field(min_length=1, max_length=MAX_NAME)


def subject_id(analyzer: Analyzer, subject: str) -> str | None:
    """The identity a subject names: the oldest of that exact name."""
    rows = analyzer.store.rows(analyzer.store.ids_by_name(subject))
    return min(rows, key=lambda r: (int(r["created_at_ms"]), r["identity_id"]))["identity_id"] if rows else None


def known_subject(analyzer: Analyzer, subject: str) -> str:
    identity_id = subject_id(analyzer, subject)
    if identity_id is None:
        raise CompreFaceError(404, SUBJECT_NOT_FOUND, f"Subject {subject} not found")
    return identity_id


def clean(subject: str) -> str:
    subject = subject.strip()
    if not subject:
        raise CompreFaceError(400, VALIDATION, "subject must not be blank")
    return subject


def example(analyzer: Analyzer, image_id: str) -> tuple[str, TemplateInfo, np.ndarray]:
    """(identity_id, info, vector) of the example `image_id`; CompreFace's 404 if there is none."""
    identity_id = analyzer.store.owner(image_id) if len(image_id) == 32 and set(image_id) <= HEX32 else None
    found = analyzer.store.templates(identity_id) if identity_id else None
    match = next(((i, v) for i, v in found[1] if i.template_id == image_id), None) if found else None
    if identity_id is None or match is None:
        raise CompreFaceError(404, IMAGE_NOT_FOUND, f"Image with ID = {image_id} not found")
    return identity_id, *match


# --- subjects ----------------------------------------------------------------------------------------------
@router.post("/subjects", status_code=201, responses=answers(SubjectOut, 201))
def add_subject(analyzer: AnalyzerDep, body: SubjectIn,
                caller: Annotated[Caller, require("identities:write", "compreface.subject_add")]) -> dict:
    subject = clean(body.subject)
    if subject_id(analyzer, subject) is not None:
        raise CompreFaceError(400, SUBJECT_ALREADY_EXISTS, f"Subject {subject} already exists")
    identity_id = uuid.uuid4().hex
    analyzer.store.add_identity(identity_id, subject, np.zeros((0, 512), np.float32),
                                analyzer.codec.spec.descriptor_model)
    caller.audit.update(identity_id=identity_id, detail="subject created without examples")
    return {"subject": subject}


@router.get("/subjects", dependencies=[require("identities:read", "compreface.subjects")],
            responses=answers(SubjectsOut))
@router.get("/subjects/", dependencies=[require("identities:read", "compreface.subjects")], include_in_schema=False)
def list_subjects(analyzer: AnalyzerDep) -> dict:
    return {"subjects": sorted({row["name"] for row in analyzer.store.all_identities()})}


@router.put("/subjects/{subject}", responses=answers(UpdatedOut))
def rename_subject(analyzer: AnalyzerDep, subject: Annotated[str, Path(max_length=MAX_NAME)], body: SubjectIn,
                   caller: Annotated[Caller, require("identities:write", "compreface.subject_rename")]) -> dict:
    """Rename; onto a subject that exists, the two merge (the examples move, the old identity is deleted)."""
    identity_id = known_subject(analyzer, subject)
    caller.audit["identity_id"] = identity_id
    new = clean(body.subject)
    if new == subject:
        return {"updated": False}
    target = subject_id(analyzer, new)
    if target is None:
        analyzer.store.update_identity(identity_id, new, None)
        caller.audit["detail"] = "renamed"
        return {"updated": True}
    found = analyzer.store.templates(identity_id)
    if found and found[1]:
        analyzer.store.add_templates(target, np.stack([v for _, v in found[1]]), found[0], MAX_IMAGES,
                                     [i for i, _ in found[1]])
    analyzer.erasures.identity(identity_id, with_sightings=False, key_id=caller.key.key_id)
    caller.audit["detail"] = f"merged into identity {target}"
    return {"updated": True}


@router.delete("/subjects/{subject}", responses=answers(SubjectOut))
def delete_subject(analyzer: AnalyzerDep, subject: Annotated[str, Path(max_length=MAX_NAME)],
                   caller: Annotated[Caller, require("identities:write", "compreface.subject_delete")]) -> dict:
    """Every identity of that name, as DELETE /v1/identities/{id} (sightings stay, unnamed)."""
    ids = analyzer.store.ids_by_name(subject)
    if not ids:
        raise CompreFaceError(404, SUBJECT_NOT_FOUND, f"Subject {subject} not found")
    for identity_id in ids:
        analyzer.erasures.identity(identity_id, with_sightings=False, key_id=caller.key.key_id)
    caller.audit["detail"] = f"{len(ids)} identities deleted"
    return {"subject": subject}


@router.delete("/subjects", responses=answers(DeletedOut))
def delete_all_subjects(analyzer: AnalyzerDep,
                        caller: Annotated[Caller, require("identities:write", "compreface.subjects_delete_all")]
                        ) -> dict:
    rows = analyzer.store.all_identities()
    for row in rows:
        analyzer.erasures.identity(row["identity_id"], with_sightings=False, key_id=caller.key.key_id)
    caller.audit["detail"] = f"{len(rows)} identities deleted"
    return {"deleted": len(rows)}


# --- examples (templates) ------------------------------------------------------------------------------------
@router.post("/faces", status_code=201, responses=answers(ExampleOut, 201))
async def add_example(request: Request, analyzer: AnalyzerDep, subject: Subject,
                      caller: Annotated[Caller, require("identities:write", "compreface.example_add")],
                      det_prob_threshold: shapes.DetProb = 0.0, file: ImageFile = None) -> dict:
    """The largest face becomes a template of the subject (created if new); refused below the quality gate."""
    subject = clean(subject)
    data = await shapes.image(request)
    (largest,) = await shapes.faces(analyzer, data, det_prob_threshold, limit=1)  # code 28: nothing stored
    face, info = upload_template(largest, "file")
    flagged, probability, verdict = child_policy(analyzer.settings).enrolment_problem(
        [face.template], analyzer.codec.spec.descriptor_model)
    if flagged and verdict == "refuse":  # this API has no warnings: under `strict` it is accepted silently
        raise CompreFaceError(400, VALIDATION, f"the face looks like a child's (P(age < 13) = {probability[0]:.2f}); "
                                               "children are not enrolled under ANALYZER_CHILD_POLICY=withhold")
    identity_id = subject_id(analyzer, subject)
    if identity_id is None:
        identity_id = uuid.uuid4().hex
        analyzer.store.add_identity(identity_id, subject, face.template[None], analyzer.codec.spec.descriptor_model,
                                    [info])
    elif not analyzer.store.add_templates(identity_id, face.template[None], analyzer.codec.spec.descriptor_model,
                                          MAX_IMAGES, [info]):
        raise CompreFaceError(404, SUBJECT_NOT_FOUND, f"Subject {subject} not found")
    caller.audit.update(identity_id=identity_id, detail=f"template {info.template_id} added")
    return {"image_id": info.template_id, "subject": subject}


@router.get("/faces", dependencies=[require("identities:read", "compreface.examples")],
            responses=answers(ExamplesPage))
def list_examples(analyzer: AnalyzerDep, subject: Annotated[str | None, Query(max_length=MAX_NAME)] = None,
                  page: Annotated[int, Query(ge=0, le=10**6)] = 0,
                  size: Annotated[int, Query(ge=1, le=1000)] = 20) -> dict:
    if subject:
        identity_id = subject_id(analyzer, subject)
        rows = [analyzer.store.identity(identity_id)] if identity_id else []
    else:
        rows = analyzer.store.all_identities()
    examples = []
    for row in rows:
        found = analyzer.store.templates(row["identity_id"]) if row else None
        examples += [{"image_id": i.template_id, "subject": row["name"]} for i, _ in (found[1] if found else [])]
    return {"faces": examples[page * size : (page + 1) * size], "page_number": page, "page_size": size,
            "total_pages": math.ceil(len(examples) / size), "total_elements": len(examples)}


def _remove_example(analyzer: Analyzer, image_id: str) -> dict:
    identity_id, _, _ = example(analyzer, image_id)
    if analyzer.store.remove_template(identity_id, image_id) == "last":  # a subject may keep no example
        analyzer.store.clear_templates(identity_id)
    return {"image_id": image_id, "subject": (analyzer.store.identity(identity_id) or {}).get("name", "")}


@router.delete("/faces", responses=answers(DeletedOut))
def delete_examples(analyzer: AnalyzerDep,
                    caller: Annotated[Caller, require("identities:write", "compreface.examples_delete")],
                    subject: Annotated[str | None, Query(max_length=MAX_NAME)] = None) -> dict:
    """Every example of the subject (it stays, matching nobody); with no subject, every example of every
    subject, as CompreFace does."""
    ids = [known_subject(analyzer, subject)] if subject else [r["identity_id"] for r in analyzer.store.all_identities()]
    deleted = sum(analyzer.store.clear_templates(i) or 0 for i in ids)
    if subject:
        caller.audit["identity_id"] = ids[0]
    caller.audit["detail"] = f"{deleted} templates of {len(ids)} identities removed"
    return {"deleted": deleted}


@router.delete("/faces/{image_id}", responses=answers(ExampleOut))
def delete_example(analyzer: AnalyzerDep, image_id: Annotated[str, Path(max_length=64)],
                   caller: Annotated[Caller, require("identities:write", "compreface.example_delete")]) -> dict:
    out = _remove_example(analyzer, image_id)
    caller.audit["detail"] = f"template {image_id} removed"
    return out


@router.post("/faces/delete", responses=answers(list[ExampleOut]))
def delete_examples_by_id(analyzer: AnalyzerDep, image_ids: Annotated[list[str], Body(max_length=1000)],
                          caller: Annotated[Caller, require("identities:write", "compreface.examples_delete")]
                          ) -> list[dict]:
    """Unknown ids are left out of the answer, as CompreFace does."""
    out = []
    for image_id in image_ids:
        try:
            out.append(_remove_example(analyzer, image_id))
        except CompreFaceError:
            continue
    caller.audit["detail"] = f"{len(out)} of {len(image_ids)} templates removed"
    return out


# --- recognize and verify ----------------------------------------------------------------------------------
@router.post("/recognize", responses=answers(RecognizeOut))
async def recognize(request: Request, analyzer: AnalyzerDep,
                    caller: Annotated[Caller, require("faces:search", "compreface.recognize")],
                    limit: shapes.Limit = 0, prediction_count: Annotated[int, Query(ge=1, le=50)] = 1,
                    det_prob_threshold: shapes.DetProb = 0.0, face_plugins: shapes.Plugins = "",
                    status: shapes.Status = False, file: ImageFile = None) -> dict:
    """Every face: the top `prediction_count` subjects and their similarity (client_similarity.py)."""
    started = time.perf_counter()
    found = await shapes.faces(analyzer, await shapes.image(request), det_prob_threshold, limit)
    result = []
    for face in found:
        decided = await run_in_threadpool(face_ops.identify, analyzer, [face], prediction_count)
        scale = shapes.identification(analyzer, decided)
        named = decided.named.identity_id if decided.named else None
        subjects = [{"subject": m.name, "similarity": scale.decided(m.similarity, m.identity_id == named,
                                                                     not decided.issues)}
                    for m in decided.candidates]
        result.append({"box": shapes.box(face), "subjects": subjects,
                       **shapes.plugins(analyzer, face, face_plugins, started, status)})
    caller.audit["detail"] = f"{len(found)} faces"
    return {"result": result, **({"plugins_versions": shapes.versions(analyzer)} if status else {})}


@router.post("/faces/{image_id}/verify", responses=answers(VerifyExampleOut))
async def verify_example(request: Request, analyzer: AnalyzerDep, image_id: Annotated[str, Path(max_length=64)],
                         caller: Annotated[Caller, require("faces:verify", "compreface.example_verify")],
                         limit: shapes.Limit = 0, det_prob_threshold: shapes.DetProb = 0.0,
                         face_plugins: shapes.Plugins = "", status: shapes.Status = False,
                         file: ImageFile = None) -> dict:
    """Every face of the image against one example, as POST /v1/verify with that template as reference."""
    started = time.perf_counter()
    identity_id, _, vector = example(analyzer, image_id)
    caller.audit["identity_id"] = identity_id
    found = await shapes.faces(analyzer, await shapes.image(request), det_prob_threshold, limit)
    scale = shapes.verification(analyzer)
    result = []
    for face in found:
        decided = face_ops.verify(analyzer, vector, 1, face)
        result.append({"box": shapes.box(face),
                       "similarity": scale.decided(decided.similarity, decided.match, not decided.issues),
                       **shapes.plugins(analyzer, face, face_plugins, started, status)})
    caller.audit["detail"] = f"{len(found)} faces against template {image_id}"
    return {"result": result, **({"plugins_versions": shapes.versions(analyzer)} if status else {})}
