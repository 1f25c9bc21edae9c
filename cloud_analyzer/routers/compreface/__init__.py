"""A CompreFace-compatible REST API (exadel-inc/CompreFace's /api/v1 calls, in its shapes), so clients
written for CompreFace (Double Take, its SDKs) work unchanged against this analyzer: subjects are our
identities, examples our templates, and every answer comes from the same functions as the native API
(`cloud_analyzer/face_ops.py`), with `similarity` on CompreFace's 0-1 scale
(`cloud_analyzer/client_similarity.py`). The key is sent as `x-api-key` and is one of our API keys; its
scopes stand for CompreFace's services (recognition: faces:search, identities:read, identities:write;
verification: faces:verify; detection: faces:detect). Errors have CompreFace's body `{message, code}`
(`errors.py`)."""

from __future__ import annotations

from fastapi import APIRouter

from cloud_analyzer.routers.compreface import recognition, services
from cloud_analyzer.routers.compreface.errors import CompreFaceRoute, denial_body
from cloud_analyzer.routers.compreface.models import ERRORS

PREFIX = "/api/v1"
router = APIRouter(prefix=PREFIX, tags=["compreface"], route_class=CompreFaceRoute, responses=ERRORS)
router.include_router(recognition.router)
router.include_router(services.router)

__all__ = ["PREFIX", "denial_body", "router"]
