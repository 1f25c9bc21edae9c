"""Search the gallery: who is this? Every face of one image is answered (`faces`, largest first; the
top-level fields are the largest face's, as before); several photos of one person are fused into one
probe (their largest face each); a base layer (JSON `base_layer`) is one face."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from cloud_analyzer import face_ops
from cloud_analyzer.deps import AnalyzerDep
from cloud_analyzer.face_ops import Face, Identification
from cloud_analyzer.routers.inputs import base64_layer, image_blobs, is_json, json_body
from facecodec.openset import MAX_PROBE_FRAMES
from service_common.guard import Caller, require

router = APIRouter(prefix="/v1/search", tags=["search"])


class Candidate(BaseModel):
    identity_id: str
    name: str
    similarity: float
    match: bool = Field(description="true only for the best candidate, and only at or above the threshold")


class FaceBox(BaseModel):
    box: list[float] | None = Field(description="x1, y1, x2, y2 in image pixels (none for a base layer)")
    landmarks: list[list[float]] | None = Field(None, description="5 points (eyes, nose, mouth corners)")
    detection_score: float | None = None
    quality_score: float | None = Field(None, description="0-1: size, sharpness, head turn")


class FaceResult(FaceBox):
    candidates: list[Candidate]
    threshold: float = Field(description="cosine the best candidate had to reach to be named")
    fpir: float = Field(description="expected share of never-enrolled people named as someone at this threshold")
    gallery_size: int
    probe_frames: int = Field(description="photos fused into the probe (at most 3 count)")
    quality_issues: list[str] = Field(description="too_small / blurred / turned_away: then nothing is named")
    threshold_override: bool = Field(False, description="threshold is the best candidate's own override "
                                                         "(docs/corrections.md), stricter than the gallery's")
    rejected_by_negative: bool = Field(False, description="the best candidate cleared the threshold but the "
                                                          "photo is closer to a face people said is not them")
    looks_child: bool | None = Field(None, description="the child-look probe flagged the face (README, Children); "
                                                       "null: not assessed (ANALYZER_CHILD_POLICY=off)")
    child_probability: float | None = Field(None, description="the probe's P(age < 13)")
    child_withheld: bool = Field(False, description="a name was withheld because the face looks like a child's")


class SearchResult(BaseModel):
    candidates: list[Candidate]
    threshold: float
    fpir: float
    gallery_size: int
    probe_frames: int
    quality_issues: list[str]
    threshold_override: bool
    rejected_by_negative: bool
    looks_child: bool | None = None
    child_probability: float | None = None
    child_withheld: bool = False
    faces: list[FaceResult] = Field(description="every face of the image, largest first (the fields above "
                                                "are its first); one entry when several photos are fused")


class SearchJson(BaseModel):
    base_layer: str = base64_layer()
    k: int | None = Field(None, ge=1, le=50)


def face_box(face: Face) -> dict:
    return {"box": list(face.box) if face.box else None, "landmarks": face.landmarks,
            "detection_score": face.detection_score,
            "quality_score": round(face.quality.score, 4) if face.quality is not None else None}


def face_result(face: Face, found: Identification) -> FaceResult:
    d = found.decision
    return FaceResult(
        **face_box(face),
        candidates=[Candidate(identity_id=m.identity_id, name=m.name, similarity=m.similarity,
                              match=found.named is not None and m.identity_id == found.named.identity_id)
                    for m in found.candidates],
        threshold=d.threshold, fpir=d.fpir, gallery_size=d.gallery_size, probe_frames=d.probe_frames,
        quality_issues=found.issues, threshold_override=d.threshold_override,
        rejected_by_negative=d.rejected_by_negative, looks_child=found.child.looks_child,
        child_probability=found.child.child_probability, child_withheld=found.child.child_withheld)


@router.post("", response_model=SearchResult)
async def search(
    request: Request,
    analyzer: AnalyzerDep,
    caller: Annotated[Caller, require("faces:search", "search")],
    image: Annotated[list[UploadFile] | None, File(
        description="a photo (every face is answered), or up to 3 photos of one person (largest face each, fused)")
    ] = None,
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> SearchResult:
    if is_json(request):
        body = await json_body(request, SearchJson)
        groups = [[face_ops.base_layer_face(analyzer, body.base_layer)]]
        k = body.k or k
    else:
        if not image or len(image) > MAX_PROBE_FRAMES:
            raise HTTPException(422, f"send 1 to {MAX_PROBE_FRAMES} images (field `image`), or JSON `base_layer`")
        blobs = await image_blobs(analyzer, image)
        if len(blobs) == 1:
            groups = [[f] for f in await run_in_threadpool(face_ops.image_faces, analyzer, *blobs[0])]
        else:
            groups = [[(await run_in_threadpool(face_ops.image_faces, analyzer, blob, label, True))[0]
                       for blob, label in blobs]]
    results = [face_result(group[0], await run_in_threadpool(face_ops.identify, analyzer, group, k))
               for group in groups]
    first = results[0]
    caller.audit["detail"] = f"{len(results)} faces, {sum(any(c.match for c in r.candidates) for r in results)} named"
    return SearchResult(candidates=first.candidates, threshold=first.threshold, fpir=first.fpir,
                        gallery_size=first.gallery_size, probe_frames=first.probe_frames,
                        quality_issues=first.quality_issues, threshold_override=first.threshold_override,
                        rejected_by_negative=first.rejected_by_negative, looks_child=first.looks_child,
                        child_probability=first.child_probability, child_withheld=first.child_withheld,
                        faces=results)
