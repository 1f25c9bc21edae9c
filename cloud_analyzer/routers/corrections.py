"""Corrections: say a sighting was not this person, or who it was; set a stricter threshold for a
look-alike. What they change and what they never change: docs/corrections.md."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import redis
from fastapi import APIRouter, HTTPException, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from cloud_analyzer.corrections import MAX_OVERRIDE, MIN_OVERRIDE, Correction, CorrectionError, Corrections
from cloud_analyzer.deps import AnalyzerDep
from cloud_analyzer.minors import child_policy
from cloud_analyzer.recognition import decode_base_layer
from cloud_analyzer.routers.identities import MAX_IMAGES
from cloud_analyzer.store import Sighting, to_sighting
from facecodec.bitstream import BitstreamError
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.profiles import UnknownProfileError
from service_common.guard import Caller, require
from service_common.ids import HEX32_PATTERN, ID_PATTERN
from service_common.pagination import Page
from service_common.redis_keys import identity_key
from service_common.times import rfc3339_ms

router = APIRouter(tags=["corrections"])


class CorrectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["reject", "reassign"] = Field(
        description="reject: not this person (identity_id, or the face's current identity); "
                    "reassign: this is identity_id (null: nobody known)")
    identity_id: str | None = Field(None, pattern=HEX32_PATTERN)
    add_as_template: bool = Field(False, description="reassign only: the face becomes a template of identity_id")


class CorrectionOut(BaseModel):
    action: str
    from_identity_id: str | None = Field(description="the identity the face is not; it got the face as a negative")
    to_identity_id: str | None = Field(description="the identity the face is named as now (null: unknown)")
    template_added: bool
    negative_added: bool = Field(description="false when the identity was enrolled with another recogniser")
    key_id: str = Field(description="the API key that made the correction")
    at: str
    at_ms: int


class CorrectionResult(BaseModel):
    correction: CorrectionOut
    sighting: Sighting


class ThresholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(
        ge=MIN_OVERRIDE, le=MAX_OVERRIDE,
        description=f"cosine in [{MIN_OVERRIDE}, {MAX_OVERRIDE}]; only applied where it is stricter than the "
                    "gallery's operating threshold; null removes the override")


class ThresholdOut(BaseModel):
    identity_id: str
    threshold_override: float | None
    gallery_threshold: float = Field(description="the gallery's threshold for one frame now (what applies "
                                                 "where the override is not stricter)")
    in_effect: bool = Field(description="the override is stricter than the gallery's threshold now")


def _out(c: Correction) -> CorrectionOut:
    return CorrectionOut(action=c.action, from_identity_id=c.from_identity_id, to_identity_id=c.to_identity_id,
                         template_added=c.template_added, negative_added=c.negative_added, key_id=c.key_id,
                         at=rfc3339_ms(c.at_ms), at_ms=c.at_ms)


@router.post("/v1/sightings/{face_id}/correction", response_model=CorrectionResult)
async def correct(
    analyzer: AnalyzerDep,
    face_id: Annotated[str, Path(pattern=ID_PATTERN)],
    body: CorrectionIn,
    caller: Annotated[Caller, require("identities:write", "face.correct")],
) -> CorrectionResult:
    face = analyzer.store.face(face_id)
    if face is None:
        raise HTTPException(404, f"face {face_id} not found")
    try:
        descriptor, codec = decode_base_layer(face["base_layer"])
    except (BitstreamError, UnknownProfileError, BaseLayerError) as exc:
        raise HTTPException(409, f"face {face_id}: its base layer does not decode ({exc})") from exc
    model = codec.spec.descriptor_model
    if body.add_as_template and body.identity_id:  # an enrolment photo like any other (minors.py)
        flagged, probability, verdict = child_policy(analyzer.settings).enrolment_problem([descriptor], model)
        if flagged and verdict == "refuse":
            raise HTTPException(422, f"face {face_id} looks like a child's (P(age < 13) = {probability[0]:.2f}): not "
                                     "added as a template under ANALYZER_CHILD_POLICY=withhold; nothing was changed")
    try:
        correction = await run_in_threadpool(
            Corrections(analyzer.store.r).correct, face_id, body.action, body.identity_id, body.add_as_template,
            caller.key.key_id, descriptor, model)
    except CorrectionError as exc:
        raise HTTPException(exc.status, exc.message) from exc
    if body.add_as_template and body.identity_id:
        # The face's decoded base layer, as the edge sent it: what every probe of this person is too.
        if not analyzer.store.add_templates(body.identity_id, np.stack([descriptor]), model, MAX_IMAGES):
            raise HTTPException(404, f"identity {body.identity_id} not found")
    caller.audit.update(face_id=face_id, identity_id=correction.to_identity_id or correction.from_identity_id or "",
                        detail=f"face {face_id}: {body.action} from {correction.from_identity_id or 'unknown'} "
                               f"to {correction.to_identity_id or 'unknown'}"
                               + ("; added as template" if correction.template_added else ""))
    return CorrectionResult(correction=_out(correction), sighting=to_sighting(analyzer.store.face(face_id) or face))


@router.get("/v1/sightings/{face_id}/corrections", response_model=Page[CorrectionOut])
def list_corrections(
    analyzer: AnalyzerDep,
    face_id: Annotated[str, Path(pattern=ID_PATTERN)],
    caller: Annotated[Caller, require("sightings:read", "face.corrections")],
) -> Page[CorrectionOut]:
    """Every correction of one face, oldest first (a face takes at most 50: one page)."""
    if analyzer.store.face(face_id) is None:
        raise HTTPException(404, f"face {face_id} not found")
    items = [_out(c) for c in Corrections(analyzer.store.r).list(face_id)]
    caller.audit["detail"] = f"face {face_id}; {len(items)} corrections"
    return Page[CorrectionOut](items=items, next_cursor=None)


@router.put("/v1/identities/{identity_id}/threshold", response_model=ThresholdOut)
def set_threshold(
    analyzer: AnalyzerDep,
    identity_id: Annotated[str, Path(pattern=HEX32_PATTERN)],
    body: ThresholdIn,
    caller: Annotated[Caller, require("identities:write", "identity.threshold")],
) -> ThresholdOut:
    """A stricter cosine for one identity (a twin, a look-alike in the same building). Never looser than
    the gallery's: that would name strangers as this person above the FPIR the operator targets."""
    key = identity_key(identity_id)
    with analyzer.store.r.pipeline(transaction=True) as pipe:
        while True:  # never set on an identity erased meanwhile (the hash would come back as a stub)
            try:
                pipe.watch(key)
                if not pipe.exists(key):
                    raise HTTPException(404, f"identity {identity_id} not found")
                pipe.multi()
                if body.threshold is None:
                    pipe.hdel(key, "threshold_override")
                else:
                    pipe.hset(key, "threshold_override", f"{body.threshold:.6f}")
                pipe.execute()
                break
            except redis.WatchError:
                continue
    gallery = _gallery_threshold(analyzer)
    caller.audit.update(identity_id=identity_id, detail=f"threshold override {body.threshold} "
                                                        f"(gallery's now {gallery:.4f})")
    return ThresholdOut(identity_id=identity_id, threshold_override=body.threshold, gallery_threshold=gallery,
                        in_effect=body.threshold is not None and body.threshold > gallery)


def _gallery_threshold(analyzer) -> float:
    """The operating threshold for a one-frame probe against the gallery as it is now."""
    codec, store = analyzer.codec, analyzer.store
    counts = analyzer.gallery.enrol_counts(codec.spec.descriptor_model)
    threshold, _ = analyzer.policy.operating_point(codec.open_set_calibration, counts, 1, store.gallery_version())
    return threshold
