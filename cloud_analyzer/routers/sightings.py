"""Sightings: every face the workers recognised (or could not), newest first, cursor-paginated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from cloud_analyzer.deps import AnalyzerDep, filters, to_ms
from cloud_analyzer.store import MAX_TIME_MS, MIN_TIME_MS, Sighting, to_sighting
from service_common.guard import Caller, require
from service_common.ids import ID_PATTERN
from service_common.pagination import CursorQuery, Page, decode_cursor, encode_cursor
from service_common.times import Timestamp, rfc3339_ms

router = APIRouter(prefix="/v1/sightings", tags=["sightings"])


@router.get("", response_model=Page[Sighting])
def list_sightings(
    analyzer: AnalyzerDep,
    caller: Annotated[Caller, require("sightings:read", "sightings.list")],
    identity_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    camera_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    since: Annotated[Timestamp | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[Timestamp | None, Query(description="ISO 8601, inclusive")] = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Page[Sighting]:
    since_ms, until_ms = to_ms(since), to_ms(until)
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise HTTPException(422, "since is after until")
    after = _position(cursor) if cursor else None
    rows, more = analyzer.store.sightings(identity_id, camera_id, since_ms, until_ms, after, limit)
    caller.audit.update({"identity_id": identity_id} if identity_id else {})
    caller.audit["detail"] = filters(camera_id=camera_id, since=since, until=until) + f"; {len(rows)} sightings"
    return Page[Sighting](items=rows, next_cursor=encode_cursor(list(more)) if more else None)


def _position(cursor: str) -> tuple[int, str]:
    """(capture time, face id) after which the page starts; a time Redis could not compare is refused."""
    ms, face_id = decode_cursor(cursor, (int, str))
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        raise HTTPException(422, "cursor: not a cursor this API gave out")
    return ms, face_id


class TrackOut(BaseModel):
    """One person's stay in view of one camera, as the edge tracked it: the faces it uplinked (its first,
    then clearly better ones), when it was first and last seen, and the best decision among them. While
    the track is open (`closed` false) first/last seen are those of its uplinked faces; once the edge
    reports it closed, they are those of every face the edge linked to it."""

    track_id: str
    camera_id: str
    first_seen_ms: int
    last_seen_ms: int
    first_seen_at: str
    last_seen_at: str
    closed: bool
    faces: int
    faces_seen: int | None = Field(None, description="faces the edge detected in the track (known once closed)")
    identity_id: str | None
    identity_name: str | None
    similarity: float | None
    sightings: list[Sighting]


@router.get("/tracks/{track_id}", response_model=TrackOut)
def get_track(analyzer: AnalyzerDep, track_id: Annotated[str, Path(pattern=ID_PATTERN)],
              caller: Annotated[Caller, require("sightings:read", "track.view")]) -> TrackOut:
    sightings = [to_sighting(face) for face in analyzer.store.track_faces(track_id)]
    if not sightings:
        raise HTTPException(404, f"track {track_id} not found (or none of its faces decided yet)")
    caller.audit["detail"] = f"track {track_id}; {len(sightings)} sightings"
    named = [s for s in sightings if s.identity_id]
    best = max(named, key=lambda s: s.similarity or 0.0) if named else None
    info = analyzer.store.track_info(track_id) or {}
    first = min([s.captured_at_ms for s in sightings] + ([int(info["first_seen_ms"])] if info else []))
    last = max([s.captured_at_ms for s in sightings] + ([int(info["last_seen_ms"])] if info else []))
    return TrackOut(track_id=track_id, camera_id=sightings[0].camera_id, first_seen_ms=first, last_seen_ms=last,
                    first_seen_at=rfc3339_ms(first), last_seen_at=rfc3339_ms(last),
                    closed=bool(info), faces=len(sightings),
                    faces_seen=int(info["faces_seen"]) if info else None,
                    identity_id=best.identity_id if best else None, identity_name=best.identity_name if best else None,
                    similarity=best.similarity if best else None, sightings=sightings)
