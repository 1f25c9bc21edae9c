"""Search the gallery by image: who is this?"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from cloud_analyzer.deps import AnalyzerDep, read_upload

router = APIRouter(prefix="/v1/search", tags=["search"])


class Candidate(BaseModel):
    identity_id: str
    name: str
    similarity: float
    match: bool


class SearchResult(BaseModel):
    candidates: list[Candidate]
    threshold: float


@router.post("", response_model=SearchResult)
async def search(
    analyzer: AnalyzerDep,
    image: Annotated[UploadFile, File(description="an image with a face; the largest face is used")],
    k: Annotated[int, Query(ge=1, le=50)] = 5,
) -> SearchResult:
    blob = await read_upload(image, analyzer.settings.max_image_bytes)
    probe = await run_in_threadpool(analyzer.templates_from_image, blob, image.filename or "image")
    threshold = analyzer.threshold
    return SearchResult(
        candidates=[
            Candidate(identity_id=m.identity_id, name=m.name, similarity=m.similarity,
                      match=m.similarity >= threshold)
            for m in analyzer.gallery.search(probe, k)
        ],
        threshold=threshold,
    )
