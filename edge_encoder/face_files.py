"""The operator's encode call: a photo in, one coded face out as a `.fcb` file (facecodec/face_file.py).

The face is coded with this edge's own front end and codec, as its cameras' faces are, but it is not
stored, queued or uplinked: the file goes back to the caller only. Behind the admin token; each call
is logged (who, what size, how many faces) without anything of the face itself.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from edge_encoder.node import EdgeNode, frame_error_status
from facecodec import face_file
from facecodec.frontend import ImageDecodeError

log = logging.getLogger(__name__)


def encode_routes(read_photo, admin: list, admin_only: dict) -> APIRouter:  # type: ignore[no-untyped-def]
    """`read_photo(request)`: the bounded photo bytes of a raw or multipart body (edge_encoder.api)."""
    router = APIRouter()

    @router.post("/v1/encode", dependencies=admin, response_class=Response,
                 responses={**admin_only, 200: {"content": {face_file.MEDIA_TYPE: {}},
                                                "description": "the largest face of the photo as a .fcb file"},
                            400: {"description": "no photo in the body (empty, or a broken multipart form)"},
                            415: {"description": "the body is not JPEG, PNG or WebP (or multipart `image`)"},
                            422: {"description": "no face found, or not a decodable image"}})
    async def encode_photo(
        request: Request,
        levels: Annotated[int | None, Query(ge=0, le=16, description="enhancement levels to code (0: base "
                                            "layer only); default every level of this edge's codec")] = None,
    ) -> Response:
        """Code the largest face of a photo (raw JPEG/PNG/WebP body, or multipart field `image`) into a face
        file; X-Faces-Found says how many faces the photo held."""
        node: EdgeNode = request.app.state.node
        codec = node.pipeline.codec
        if levels is not None and levels > codec.levels:
            raise HTTPException(422, f"levels must be 0..{codec.levels} for codec {codec.spec.name}")
        photo = await read_photo(request)
        client = request.client.host if request.client else "?"
        try:
            faces, found = await run_in_threadpool(face_file.encode_photo, photo, codec,
                                                   node.pipeline.front_end, levels)
        except face_file.NoFaceFound as exc:
            log.info("admin encode from %s: %d-byte photo, no face", client, len(photo))
            raise HTTPException(422, "no face found in the photo") from exc
        except ImageDecodeError as exc:
            log.info("admin encode from %s: %d-byte photo refused: %s", client, len(photo), exc)
            status = frame_error_status(exc)
            raise HTTPException(422 if status == 400 else status, str(exc)) from exc
        data = faces[0].to_bytes()
        log.info("admin encode from %s: %d-byte photo, %d faces, the largest coded in %d bytes (%d layers)",
                 client, len(photo), found, len(data), len(faces[0].coded.enhancements))
        return Response(data, media_type=face_file.MEDIA_TYPE,
                        headers={"X-Faces-Found": str(found), "Cache-Control": "no-store",
                                 "Content-Disposition": f'attachment; filename="face{face_file.EXTENSION}"'})

    return router
