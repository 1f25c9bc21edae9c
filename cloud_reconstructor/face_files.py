"""Decode an uploaded face file (`.fcb`, facecodec/face_file.py) to a PNG: the same pixels a view of a
stored face gives, for a face someone handed over. The file is checked whole (size, container, CRCs,
codec, levels) before anything is decoded; any fault is one 422 with the reason. Audited like views:
base-only needs faces:view_base, `layers=full` faces:view."""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from fastapi import APIRouter, File, HTTPException, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from cloud_reconstructor.metrics import ReconstructorMetrics
from facecodec import face_file
from service_common.guard import Caller, require

FORM_SLACK = 16 * 1024  # multipart boundaries and part headers around the file


def decode_routes(max_upload_bytes: int, metrics: ReconstructorMetrics) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/decode",
        responses={200: {"content": {"image/png": {}}, "description": "the face the file codes, aligned"},
                   422: {"description": "not a face file this service decodes (the reason is given)"}},
        response_class=Response,
    )
    async def decode_face_file(
        caller: Annotated[Caller, require("faces:view_base", "face.decode", {("layers", "full"): "faces:view"})],
        face: Annotated[UploadFile, File(description=f"a face file ({face_file.EXTENSION}, "
                                                     f"{face_file.MEDIA_TYPE})")],
        layers: Annotated[Literal["base", "full"], Query(description="base: from the base layer alone")] = "base",
        level: Annotated[int | None, Query(ge=1, le=255, description="enhancement level; default the highest "
                                           "the file holds")] = None,
    ) -> Response:
        caller.audit["layers"] = "base" if layers == "base" else f"full:{level or 'all'}"
        data = await face.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise HTTPException(413, f"face file larger than {max_upload_bytes} bytes")
        digest = hashlib.sha256(data).hexdigest()[:16]  # which file was viewed, without keeping it
        try:
            image, decoded_at = await run_in_threadpool(face_file.decode, data, layers, level)
        except face_file.FaceFileError as exc:
            caller.audit["detail"] = f"file sha256:{digest}"
            raise HTTPException(422, str(exc)) from exc
        caller.audit["layers"] = "base" if decoded_at == 0 else f"level {decoded_at}"
        caller.audit["detail"] = f"file sha256:{digest}, {len(data)} bytes"
        metrics.views.labels(f"file_{layers}").inc()
        return Response(face_file.png(image), media_type="image/png",
                        headers={"X-Layers": layers, "X-Enhancement-Level": str(decoded_at),
                                 "Cache-Control": "no-store"})

    return router
