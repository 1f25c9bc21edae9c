"""The past, searched by face: where and when has this person been seen (`POST /v1/search/history`),
and, after an enrolment, which past unknown sightings were them (`POST /v1/identities/{id}/backfill`)."""

from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Path, UploadFile
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from cloud_analyzer.corrections import NegativeVeto
from cloud_analyzer.deps import Analyzer, AnalyzerDep, read_upload, to_ms
from cloud_analyzer.history import History
from cloud_analyzer.identities import LEGACY_DESCRIPTOR_MODEL
from cloud_analyzer.recognition import decode_base_layer
from facecodec.bitstream import BitstreamError
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.profiles import UnknownProfileError
from service_common.guard import Caller, require
from service_common.ids import HEX32_PATTERN, ID_BODY, ID_PATTERN
from service_common.pagination import MAX_CURSOR_CHARS, decode_cursor, encode_cursor
from service_common.redis_keys import mean_key
from service_common.times import Timestamp, rfc3339_ms

router = APIRouter(tags=["history"])
CAMERAS = f"^{ID_BODY}(,{ID_BODY}){{0,49}}$"  # up to 50 comma-separated camera ids
DAY_MS = 86_400_000
MAX_DEPTH = 2000  # hits one probe may page through: the nearest ones are what a history search is for


class HistoryHitOut(BaseModel):
    face_id: str
    camera_id: str
    captured_at_ms: int
    captured_at: str
    similarity: float = Field(description="cosine to the probe (8-bit index: within ~0.01 of the float cosine)")
    status: str
    identity_id: str | None
    identity_name: str | None
    track_id: str | None


class HistoryResult(BaseModel):
    items: list[HistoryHitOut]
    next_cursor: str | None = Field(description="pass as `cursor`, with the same probe and filters, for the "
                                                "next hits; null when none are left")
    probe: str = Field(description="what was searched with: image, face, identity or base_layer")
    days_searched: int


def _window(analyzer: Analyzer, since: datetime | None, until: datetime | None) -> tuple[int, int]:
    now = int(time.time() * 1000)
    hi = to_ms(until) if until else now
    keep_days = analyzer.settings.retention_days or 365
    lo = to_ms(since) if since else hi - int(keep_days * DAY_MS)
    if lo > hi:
        raise HTTPException(422, "since is after until")
    return max(lo, 0), hi


async def _probe(analyzer: Analyzer, image: UploadFile | None, face_id: str | None, identity_id: str | None,
                 base_layer: str | None) -> tuple[np.ndarray, str, str]:
    """(descriptor, its model, what it came from) from exactly one of the four probe kinds."""
    given = [name for name, v in (("image", image), ("face_id", face_id), ("identity_id", identity_id),
                                  ("base_layer", base_layer)) if v]
    if len(given) != 1:
        raise HTTPException(422, "send exactly one of image, face_id, identity_id, base_layer")
    if image is not None:
        blob = await read_upload(image, analyzer.settings.max_image_bytes)
        descriptor, _ = await run_in_threadpool(analyzer.face_from_image, blob, image.filename or "image")
        return analyzer.as_probe(descriptor), analyzer.codec.spec.descriptor_model, "image"
    if identity_id:
        row = analyzer.store.identity(identity_id)
        template = analyzer.store.r.get(mean_key(identity_id))
        if row is None or template is None:
            raise HTTPException(404, f"identity {identity_id} not found")
        return np.frombuffer(template, "<f4"), row.get("descriptor_model", LEGACY_DESCRIPTOR_MODEL), "identity"
    if face_id:
        face = analyzer.store.face(face_id)
        if face is None:
            raise HTTPException(404, f"face {face_id} not found")
        container, kind = face["base_layer"], "face"
    else:
        try:
            container, kind = base64.b64decode(base_layer or "", validate=True), "base_layer"
        except (binascii.Error, ValueError) as exc:
            raise HTTPException(422, "base_layer must be base64") from exc
    try:
        descriptor, codec = decode_base_layer(container)
    except (BitstreamError, BaseLayerError, UnknownProfileError) as exc:
        raise HTTPException(422 if kind == "base_layer" else 500, "base layer cannot be decoded") from exc
    return descriptor, codec.spec.descriptor_model, kind


@router.post("/v1/search/history", response_model=HistoryResult)
async def search_history(
    analyzer: AnalyzerDep,
    caller: Annotated[Caller, require("faces:search", "search.history")],
    image: Annotated[UploadFile | None, File(description="a photo: its largest face is the probe")] = None,
    face_id: Annotated[str | None, Form(pattern=ID_PATTERN)] = None,
    identity_id: Annotated[str | None, Form(pattern=HEX32_PATTERN)] = None,
    base_layer: Annotated[str | None, Form(max_length=4096, description="a base-only container, base64")] = None,
    cameras: Annotated[str | None, Form(pattern=CAMERAS, description="comma-separated camera ids")] = None,
    since: Annotated[Timestamp | None, Form(description="ISO 8601; default: the retention period back")] = None,
    until: Annotated[Timestamp | None, Form(description="ISO 8601; default: now")] = None,
    min_similarity: Annotated[float, Form(ge=-1, le=1)] = 0.3,
    cursor: Annotated[str | None, Form(max_length=MAX_CURSOR_CHARS,
                                       description="`next_cursor` of the previous page (same probe and "
                                                   "filters); omit for the first")] = None,
    limit: Annotated[int, Form(ge=1, le=500)] = 50,
) -> HistoryResult:
    """Past sightings most similar to the probe (recognised or not), best first, within the filters."""
    similarity, after_face, depth = decode_cursor(cursor, (float, str, int)) if cursor else (2.0, "", 0)
    if not 0 <= depth < MAX_DEPTH:
        raise HTTPException(422, "cursor: not a cursor this API gave out")
    probe, model, kind = await _probe(analyzer, image, face_id, identity_id, base_layer)
    lo, hi = _window(analyzer, since, until)
    caller.audit.update({k: v for k, v in (("face_id", face_id), ("identity_id", identity_id)) if v})
    # The search is ranked, not stored: it is run again, deep enough for this page, and the page starts
    # after the cursor's (similarity, face id), so a hit never repeats across pages.
    wanted = min(depth + limit + 1, MAX_DEPTH)
    try:
        hits, days = await run_in_threadpool(History(analyzer.store.r).search, probe, model, lo, hi,
                                             cameras.split(",") if cameras else None, min_similarity, wanted)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    ranked = sorted(hits, key=lambda h: (-h.similarity, h.face_id))
    after = [h for h in ranked if (-h.similarity, h.face_id) > (-similarity, after_face)]
    page, more = after[:limit], len(after) > limit and depth + limit < MAX_DEPTH
    caller.audit["detail"] = f"{kind} probe; {len(page)} hits over {days} days"
    items = [HistoryHitOut(**h.__dict__, captured_at=rfc3339_ms(h.captured_at_ms)) for h in page]
    next_cursor = encode_cursor([page[-1].similarity, page[-1].face_id, depth + len(page)]) if more else None
    return HistoryResult(items=items, next_cursor=next_cursor, probe=kind, days_searched=days)


class BackfillIn(BaseModel):
    since: Timestamp | None = None
    until: Timestamp | None = None


class BackfillOut(BaseModel):
    identity_id: str
    examined: int = Field(description="past faces similar enough to be this person at the gallery's threshold")
    relabelled: int = Field(description="of those, unknown sightings now named as this person")
    face_ids: list[str]
    threshold: float


@router.post("/v1/identities/{identity_id}/backfill", response_model=BackfillOut)
def backfill(analyzer: AnalyzerDep, identity_id: Annotated[str, Path(pattern=HEX32_PATTERN)],
             caller: Annotated[Caller, require("identities:write", "identity.backfill")],
             body: BackfillIn | None = None) -> BackfillOut:
    """Re-identification after the fact: past unknown sightings that match this identity at the
    threshold the analyzer decides at now are named as it (recognised, `face.relabelled` events)."""
    row = analyzer.store.identity(identity_id)
    template = analyzer.store.r.get(mean_key(identity_id))
    if row is None or template is None:
        raise HTTPException(404, f"identity {identity_id} not found")
    body = body or BackfillIn()
    lo, hi = _window(analyzer, body.since, body.until)
    probe, model = np.frombuffer(template, "<f4"), row.get("descriptor_model", LEGACY_DESCRIPTOR_MODEL)
    view, _ = analyzer.gallery.search(probe, model, 1)
    threshold, _ = analyzer.policy.operating_point(analyzer.codec.open_set_calibration, view.enrol_counts, 1,
                                                   view.version)
    if row.get("threshold_override"):  # corrections: a look-alike's own threshold, where stricter
        threshold = max(threshold, float(row["threshold_override"]))
    vetoed = NegativeVeto(analyzer.store.r, identity_id)  # corrections: faces closer to its negatives
    try:
        hits, _ = History(analyzer.store.r).search(probe, model, lo, hi, None, threshold, 500)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    changed = [h.face_id for h in hits if h.status == "unknown" and not vetoed(h.face_id, h.similarity)
               and analyzer.store.relabel(h.face_id, identity_id, row["name"], h.similarity)]
    caller.audit["detail"] = f"{len(changed)} of {len(hits)} matching past faces relabelled"
    return BackfillOut(identity_id=identity_id, examined=len(hits), relabelled=len(changed), face_ids=changed,
                       threshold=round(threshold, 4))
