"""CompreFace's detection and verification services: `POST /detection/detect` (POST /v1/detect's faces in
CompreFace's shape) and `POST /verification/verify` (the source image's largest face against every face of
the target image, as POST /v1/verify decides)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile

from cloud_analyzer import face_ops
from cloud_analyzer.deps import AnalyzerDep
from cloud_analyzer.routers.compreface import shapes
from cloud_analyzer.routers.compreface.errors import CompreFaceRoute
from cloud_analyzer.routers.compreface.models import DetectOut, VerificationOut, answers
from service_common.guard import Caller, require

router = APIRouter(route_class=CompreFaceRoute)  # included routes keep their own class
ImageFile = Annotated[UploadFile | None, File()]


@router.post("/detection/detect", responses=answers(DetectOut))
async def detect(request: Request, analyzer: AnalyzerDep,
                 caller: Annotated[Caller, require("faces:detect", "compreface.detect")],
                 limit: shapes.Limit = 0, det_prob_threshold: shapes.DetProb = 0.0,
                 face_plugins: shapes.Plugins = "", status: shapes.Status = False, file: ImageFile = None) -> dict:
    started = time.perf_counter()
    found = await shapes.faces(analyzer, await shapes.image(request), det_prob_threshold, limit)
    caller.audit["detail"] = f"{len(found)} faces"
    return {"result": [{"box": shapes.box(f), **shapes.plugins(analyzer, f, face_plugins, started, status)}
                       for f in found],
            **({"plugins_versions": shapes.versions(analyzer)} if status else {})}


@router.post("/verification/verify", responses=answers(VerificationOut))
async def verify(request: Request, analyzer: AnalyzerDep,
                 caller: Annotated[Caller, require("faces:verify", "compreface.verify")],
                 limit: shapes.Limit = 0, det_prob_threshold: shapes.DetProb = 0.0,
                 face_plugins: shapes.Plugins = "", status: shapes.Status = False,
                 prediction_count: Annotated[int, Query(ge=1, le=50, description="accepted as CompreFace's "
                                                        "documentation lists it; every target face is answered")] = 1,
                 source_image: ImageFile = None, target_image: ImageFile = None) -> dict:
    started = time.perf_counter()
    (source,) = await shapes.faces(analyzer, await shapes.image(request, "source_image"), det_prob_threshold, 1)
    targets = await shapes.faces(analyzer, await shapes.image(request, "target_image"), det_prob_threshold, limit)
    scale = shapes.verification(analyzer)
    matches = []
    for target in targets:
        decided = face_ops.verify(analyzer, source.template, 1, target, issues=source.issues)
        matches.append({"box": shapes.box(target),
                        "similarity": scale.decided(decided.similarity, decided.match, not decided.issues),
                        **shapes.plugins(analyzer, target, face_plugins, started, status)})
    matches.sort(key=lambda m: -m["similarity"])
    matched = sum(m["similarity"] >= scale.match_similarity for m in matches)
    caller.audit["detail"] = f"{len(matches)} target faces, {matched} matched"
    return {"result": [{"source_image_face": {"box": shapes.box(source),
                                              **shapes.plugins(analyzer, source, face_plugins, started, status)},
                        "face_matches": matches, "plugins_versions": shapes.versions(analyzer)}]}
