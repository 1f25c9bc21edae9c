"""Search the gallery by image: who is this? Several photos of one person are fused into one probe."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from cloud_analyzer.deps import AnalyzerDep, read_upload
from facecodec.openset import MAX_PROBE_FRAMES, identity_template
from service_common.guard import require

router = APIRouter(prefix="/v1/search", tags=["search"])


class Candidate(BaseModel):
    identity_id: str
    name: str
    similarity: float
    match: bool = Field(description="true only for the best candidate, and only at or above the threshold")


class SearchResult(BaseModel):
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


@router.post("", response_model=SearchResult, dependencies=[require("faces:search", "search")])
async def search(
    analyzer: AnalyzerDep,
    image: Annotated[list[UploadFile], File(description="one or more photos of one person; largest face each")],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> SearchResult:
    if len(image) > MAX_PROBE_FRAMES:
        raise HTTPException(422, f"send 1 to {MAX_PROBE_FRAMES} images of one person")
    faces = []
    for i, upload in enumerate(image):
        blob = await read_upload(upload, analyzer.settings.max_image_bytes)
        faces.append(await run_in_threadpool(analyzer.face_from_image, blob, upload.filename or f"image {i}"))
    issues = sorted({issue for _, quality in faces for issue in quality.issues})
    probe = identity_template([analyzer.as_probe(descriptor) for descriptor, _ in faces])
    codec = analyzer.codec
    decision, candidates = analyzer.policy.decide(
        analyzer.gallery, probe, codec.spec.descriptor_model, codec.open_set_calibration, len(faces), k,
    )
    named = decision.match if not issues else None
    return SearchResult(
        candidates=[
            Candidate(identity_id=m.identity_id, name=m.name, similarity=m.similarity,
                      match=named is not None and m.identity_id == named.identity_id)
            for m in candidates
        ],
        threshold=decision.threshold, fpir=decision.fpir, gallery_size=decision.gallery_size,
        probe_frames=decision.probe_frames, quality_issues=issues,
        threshold_override=decision.threshold_override, rejected_by_negative=decision.rejected_by_negative,
    )
