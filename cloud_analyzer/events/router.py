"""Events over HTTP: the poll (`GET /v1/events`) and the push (`GET /v1/events/stream`, Server-Sent Events)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from cloud_analyzer.deps import AnalyzerDep
from cloud_analyzer.events.schema import Event, EventFilter
from cloud_analyzer.metrics import EVENT_DELIVERIES
from service_common.guard import require
from service_common.ids import ID_PATTERN
from service_common.pagination import CursorQuery, Page, decode_cursor, encode_cursor

router = APIRouter(tags=["events"])
STREAM_ID = r"^(\d{1,20})-(\d{1,20})$"
STATUSES = r"^(recognised|unknown|low_quality|error)$"


def _stream_id(value: str, label: str) -> str:
    match = re.match(STREAM_ID, value)
    if not match or any(int(part) >= 2**64 for part in match.groups()):
        raise HTTPException(422, f"{label}: not an event id (`<ms>-<seq>`, each part below 2**64)")
    return value


@router.get("/v1/events", response_model=Page[Event], dependencies=[require("events:read")])
def list_events(
    analyzer: AnalyzerDep,
    cursor: CursorQuery = None,
    after: Annotated[str | None, Query(description="start after this event id (an SSE `id`); instead of cursor")]
    = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[Event]:
    """The events stream, oldest first: the same events SSE pushes, for clients that poll."""
    if cursor and after:
        raise HTTPException(422, "give cursor or after, not both")
    start = _stream_id(after, "after") if after and after != "-" else "-"  # '-': from the oldest
    if cursor:
        start = _stream_id(decode_cursor(cursor, (str,))[0], "cursor")
    rows = analyzer.store.events(start, limit + 1)
    items = [Event.from_stream(i, d) for i, d in rows[:limit]]
    return Page[Event](items=items, next_cursor=encode_cursor([items[-1].id]) if len(rows) > limit else None)


@router.get("/v1/events/stream", dependencies=[require("events:read", "events.stream")],
            response_class=EventSourceResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "one `sighting` event per decision (docs/events.md)"}})
async def stream_events(
    request: Request,
    analyzer: AnalyzerDep,
    camera_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    identity_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    status: Annotated[str | None, Query(pattern=STATUSES)] = None,
    cluster_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    last_event_id: Annotated[str | None, Header(description="resume after this event (replayed from the "
                                                             "stream while it still holds it)")] = None,
) -> EventSourceResponse:
    """Decisions as they happen, filtered; a reconnecting client sends `Last-Event-ID` and misses nothing
    the stream still holds (docs/events.md)."""
    after = _stream_id(last_event_id, "Last-Event-ID") if last_event_id else None
    want = EventFilter(camera_id=camera_id, identity_id=identity_id, status=status, cluster_id=cluster_id)
    hub = request.app.state.event_hub

    async def events():
        async for event in hub.subscribe(want, after):
            yield ServerSentEvent(data=event.model_dump_json(), event="sighting", id=event.id)
            EVENT_DELIVERIES.labels("sse", "ok").inc()  # handed to the connection (a dropped client resumes)

    settings = analyzer.settings
    return EventSourceResponse(events(), ping=int(max(1, settings.sse_ping_s)),
                               send_timeout=settings.sse_send_timeout_s, headers={"Cache-Control": "no-store"})
