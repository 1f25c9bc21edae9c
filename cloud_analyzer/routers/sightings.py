"""Sightings: every face the workers recognised (or could not), newest first, cursor-paginated."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from cloud_analyzer.deps import AnalyzerDep
from cloud_analyzer.store import CursorError, Sighting

router = APIRouter(prefix="/v1/sightings", tags=["sightings"])
ID = r"^[A-Za-z0-9_.-]{1,64}$"


class SightingPage(BaseModel):
    items: list[Sighting]
    next_cursor: str | None


def _ms(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp() * 1000)


@router.get("", response_model=SightingPage)
def list_sightings(
    analyzer: AnalyzerDep,
    identity_id: Annotated[str | None, Query(pattern=ID)] = None,
    camera_id: Annotated[str | None, Query(pattern=ID)] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SightingPage:
    if since and until and since > until:
        raise HTTPException(422, "since is after until")
    try:
        rows, next_cursor = analyzer.store.sightings(identity_id, camera_id, _ms(since), _ms(until), cursor, limit)
    except CursorError as exc:
        raise HTTPException(400, str(exc)) from exc
    return SightingPage(items=rows, next_cursor=next_cursor)
