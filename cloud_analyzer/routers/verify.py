"""1:1 verification: are these the same person? Two images, two stored faces, two base layers, or one of
those against an enrolled identity. The threshold keeps the pair false-accept rate at
ANALYZER_VERIFY_FAR on the codec's calibration identities (`face_ops.verification_threshold`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, model_validator

from cloud_analyzer import face_ops
from cloud_analyzer.deps import Analyzer, AnalyzerDep
from cloud_analyzer.face_ops import Face
from cloud_analyzer.routers.inputs import base64_layer, image_blobs, is_json, json_body
from facecodec.openset import identity_template
from service_common.guard import Caller, require
from service_common.ids import HEX32_PATTERN, ID_PATTERN

router = APIRouter(prefix="/v1/verify", tags=["search"])


class Side(BaseModel):
    """One face given without pixels, or (as the reference only) an enrolled identity: exactly one field."""

    face_id: str | None = Field(None, pattern=ID_PATTERN)
    base_layer: str | None = base64_layer(None)
    identity_id: str | None = Field(None, pattern=HEX32_PATTERN)

    @model_validator(mode="after")
    def _one(self) -> Side:
        if sum(v is not None for v in (self.face_id, self.base_layer, self.identity_id)) != 1:
            raise ValueError("give exactly one of face_id, base_layer, identity_id")
        return self


class VerifyJson(BaseModel):
    probe: Side
    reference: Side


class VerifyResult(BaseModel):
    similarity: float = Field(description="cosine of the probe to the reference")
    threshold: float = Field(description="cosine at which two faces are taken for one person")
    match: bool = Field(description="similarity >= threshold, and neither face has quality issues")
    far: float = Field(description="share of pairs of two different people accepted at this threshold, on the "
                                   "codec's calibration identities")
    far_held_out: float | None = Field(
        description="the same rate measured on held-out LFW identities, image against image "
                    "(bench/results/verify_far.json); null where not measured (another ANALYZER_VERIFY_FAR, "
                    "an identity of several templates as the reference)")
    target_far: float = Field(description="ANALYZER_VERIFY_FAR, which set the threshold")
    reference_templates: int = Field(description="photos the reference stands for (an identity: its templates)")
    quality_issues: list[str]
    threshold_override: bool = Field(False, description="against an identity: its own stricter threshold was used "
                                                        "(docs/corrections.md)")
    rejected_by_negative: bool = Field(False, description="against an identity: cleared the threshold, but as close "
                                                          "to a face people said is not them")


def reference_of(analyzer: Analyzer, side: Side | Face) -> tuple[Face | None, list, int]:
    """(the reference face, or None for an identity; the vector; how many photos it stands for)."""
    if isinstance(side, Face):
        return side, side.template, 1
    if side.identity_id is None:
        face = side_face(analyzer, side)
        return face, face.template, 1
    found = analyzer.store.templates(side.identity_id)
    if found is None:
        raise HTTPException(404, f"identity {side.identity_id} not found")
    model, templates = found
    if model != analyzer.codec.spec.descriptor_model:
        raise HTTPException(409, f"identity {side.identity_id} was enrolled with recogniser {model}; add new "
                                 "photos before verifying against it (GET /v1/identities/migration)")
    return None, identity_template([v for _, v in templates]), len(templates)


def side_face(analyzer: Analyzer, side: Side) -> Face:
    if side.face_id is not None:
        return face_ops.stored_face(analyzer, side.face_id)
    if side.base_layer is not None:
        return face_ops.base_layer_face(analyzer, side.base_layer)
    raise HTTPException(422, "probe: an identity can only be the reference")


def decide(analyzer: Analyzer, probe: Face, reference: Side | Face) -> VerifyResult:
    face, vector, count = reference_of(analyzer, reference)
    identity_id = None if isinstance(reference, Face) else reference.identity_id
    result = face_ops.verify(analyzer, vector, count, probe, issues=face.issues if face else (),
                             identity_id=identity_id)
    return VerifyResult(similarity=round(result.similarity, 6), threshold=round(result.threshold, 6),
                        match=result.match, far=result.far, far_held_out=result.far_held_out,
                        target_far=result.target_far,
                        reference_templates=count, quality_issues=result.issues,
                        threshold_override=result.threshold_override,
                        rejected_by_negative=result.rejected_by_negative)


@router.post("", response_model=VerifyResult)
async def verify(
    request: Request,
    analyzer: AnalyzerDep,
    caller: Annotated[Caller, require("faces:verify", "verify")],
    images: Annotated[list[UploadFile] | None, File(description="two photos: probe, then reference")] = None,
    image: Annotated[UploadFile | None, File(description="a photo, verified against `identity_id`")] = None,
    identity_id: Annotated[str | None, Form(pattern=HEX32_PATTERN)] = None,
) -> VerifyResult:
    """Multipart: `images` (two photos, largest face each) or `image` + `identity_id`. JSON: `probe` and
    `reference`, each `{"face_id"}` or `{"base_layer"}`; the reference may be `{"identity_id"}`."""
    if is_json(request):
        body = await json_body(request, VerifyJson)
        probe = side_face(analyzer, body.probe)
        reference: Side | Face = body.reference
        said = body.reference.identity_id
    else:
        uploads = images or ([image] if image is not None else [])
        wanted = 1 if identity_id else 2
        if len(uploads) != wanted or (images and image):
            raise HTTPException(422, "send two photos as `images`, or one `image` with `identity_id`")
        faces = [(await run_in_threadpool(face_ops.image_faces, analyzer, blob, label, True))[0]
                 for blob, label in await image_blobs(analyzer, uploads)]
        probe = faces[0]
        reference = Side(identity_id=identity_id) if identity_id else faces[1]
        said = identity_id
    if said:
        caller.audit["identity_id"] = said
    result = decide(analyzer, probe, reference)
    caller.audit["detail"] = f"similarity {result.similarity:.3f}, {'match' if result.match else 'no match'}"
    return result
