"""How a route takes faces: uploaded images (multipart), or JSON with base-layer containers in base64
(`base_layer` / `base_layers`, docs/bitstream.md) and stored faces (`face_ids`). A route accepting both
declares its multipart fields optional and reads JSON itself when the request is JSON
(`is_json` / `json_body`)."""

from __future__ import annotations

from typing import TypeVar

from fastapi import HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from cloud_analyzer import face_ops
from cloud_analyzer.deps import Analyzer, read_upload
from cloud_analyzer.face_ops import Face
from cloud_analyzer.identities import TemplateInfo
from service_common.ids import ID, ID_RULE

T = TypeVar("T", bound=BaseModel)
MAX_TEMPLATE_INPUTS = 32


def base64_layer(default: object = ...) -> object:
    """A JSON field holding a base-layer container (docs/bitstream.md) in base64."""
    return Field(default, min_length=1, max_length=face_ops.MAX_BASE_LAYER_B64,
                 description="a base-layer container (docs/bitstream.md), base64")


class FaceSources(BaseModel):
    """Faces given without pixels: base layers a client coded, or faces the analyzer stored."""

    base_layer: str | None = base64_layer(None)
    base_layers: list[str] = Field(default_factory=list, max_length=MAX_TEMPLATE_INPUTS)
    face_ids: list[str] = Field(default_factory=list, max_length=MAX_TEMPLATE_INPUTS,
                                description="stored faces (sightings) of this person, confirmed by the user")

    def count(self) -> int:
        return (self.base_layer is not None) + len(self.base_layers) + len(self.face_ids)


def is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


async def json_body(request: Request, model: type[T]) -> T:
    """The JSON body as `model`, or 422 naming the first problem."""
    try:
        data = await request.json()
    except ValueError as exc:
        raise HTTPException(422, "body: not valid JSON") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPException(422, f"{where}: {first['msg']}") from exc


async def image_blobs(analyzer: Analyzer, images: list[UploadFile]) -> list[tuple[bytes, str]]:
    return [(await read_upload(image, analyzer.settings.max_image_bytes), image.filename or f"image {i}")
            for i, image in enumerate(images)]


def enrollable(face: Face, label: str) -> None:
    quality = face.quality
    if quality is not None and not quality.ok:
        raise HTTPException(422, f"{label}: face not good enough to enrol ({', '.join(quality.issues)}; "
                                 f"width {quality.face_width_px:.0f} px, sharpness {quality.sharpness:.0f}, "
                                 f"yaw {quality.yaw:.2f}); send a sharper, larger, frontal photo")


async def image_template(analyzer: Analyzer, blob: bytes, label: str) -> tuple[Face, TemplateInfo]:
    """The template of an image's largest face, if it passes the quality gate."""
    return upload_template((await run_in_threadpool(face_ops.image_faces, analyzer, blob, label, True))[0], label)


def upload_template(face: Face, label: str) -> tuple[Face, TemplateInfo]:
    enrollable(face, label)
    return face, TemplateInfo.new("upload", quality=round(face.quality.score, 4) if face.quality else None)


async def template_faces(analyzer: Analyzer, images: list[UploadFile] | None, sources: FaceSources | None
                         ) -> list[tuple[Face, TemplateInfo]]:
    """The templates a request gives (each with what it is), or an HTTP error naming the bad input;
    nothing is stored here, so a bad input anywhere adds nothing."""
    given = len(images or []) + (sources.count() if sources else 0)
    if not 1 <= given <= MAX_TEMPLATE_INPUTS:
        raise HTTPException(422, f"send 1 to {MAX_TEMPLATE_INPUTS} images, base layers or face ids")
    out: list[tuple[Face, TemplateInfo]] = []
    for blob, label in await image_blobs(analyzer, images or []):
        out.append(await image_template(analyzer, blob, label))
    if sources is not None:
        layers = ([sources.base_layer] if sources.base_layer is not None else []) + sources.base_layers
        for i, layer in enumerate(layers):
            out.append((face_ops.base_layer_face(analyzer, layer, f"base_layers[{i}]"), TemplateInfo.new("upload")))
        for face_id in sources.face_ids:
            if not ID.match(face_id):
                raise HTTPException(422, f"face_ids: a face id is {ID_RULE}")
            face = face_ops.stored_face(analyzer, face_id)
            stored = analyzer.store.face(face_id) or {}
            quality = float(stored["quality_score"]) if stored.get("quality_score") else None
            out.append((face, TemplateInfo.new("face", face_id=face_id, quality=quality)))
    return out

