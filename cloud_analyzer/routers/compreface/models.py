"""CompreFace's answers as its documentation states them (exadel-inc/CompreFace
docs/Rest-API-description.md), declared in the OpenAPI of the compatible routes: what a client written
for CompreFace reads. Documentation only: the routes build their answers in `shapes.py`, and the fuzz
test checks every answer against these schemas. Fields a plugin adds are optional; `docs/compreface-
contract.json` lists every documented field and tests/test_compreface_contract.py checks this against it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    message: str
    code: int = Field(description="CompreFace's CommonExceptionCode: 28 no face, 42 subject not found, ...")


class SubjectOut(BaseModel):
    subject: str


class SubjectsOut(BaseModel):
    subjects: list[str]


class UpdatedOut(BaseModel):
    updated: bool


class DeletedOut(BaseModel):
    deleted: int


class ExampleOut(BaseModel):
    image_id: str = Field(description="our template id")
    subject: str


class ExamplesPage(BaseModel):
    faces: list[ExampleOut]
    page_number: int
    page_size: int
    total_pages: int
    total_elements: int


class Box(BaseModel):
    probability: float
    x_max: int
    y_max: int
    x_min: int
    y_min: int


class SubjectSimilarity(BaseModel):
    similarity: float = Field(description="0-1, a monotone function of our score (client_similarity.py)")
    subject: str


class DetectedFace(BaseModel):
    box: Box
    landmarks: list[list[int]] | None = Field(None, description="face_plugins=landmarks: 5 points")
    embedding: list[float] | None = Field(None, description="face_plugins=calculator, where enabled")
    execution_time: dict[str, float] | None = Field(None, description="status=true")


class RecognizedFace(DetectedFace):
    subjects: list[SubjectSimilarity]


class VerifiedFace(DetectedFace):
    similarity: float


class RecognizeOut(BaseModel):
    result: list[RecognizedFace]
    plugins_versions: dict[str, Any] | None = Field(None, description="status=true")


class DetectOut(BaseModel):
    result: list[DetectedFace]
    plugins_versions: dict[str, Any] | None = None


class VerifyExampleOut(BaseModel):
    result: list[VerifiedFace]
    plugins_versions: dict[str, Any] | None = None


class VerificationResult(BaseModel):
    source_image_face: DetectedFace
    face_matches: list[VerifiedFace]
    plugins_versions: dict[str, Any] | None = None


class VerificationOut(BaseModel):
    result: list[VerificationResult]


def answers(model: type[BaseModel] | Any, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: its success body."""
    return {status: {"model": model}}


# What the compatible routes answer on error, in CompreFace's body (errors.py): bad input of any kind is
# 400 there, so 415 and 422 never reach a client of these routes.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": why} for status, why in (
        (400, "bad input: code 26 validation, 28 no face, 34 a missing part, ..."),
        (401, "code 20: no x-api-key, or not a valid key"), (403, "the key lacks the scope of this service"),
        (404, "code 11 image, 42 subject not found"), (429, "too many requests (see Retry-After)"))
}
