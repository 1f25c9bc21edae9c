"""Edges: each trusted edge (ANALYZER_EDGES) with when it last delivered faces and the erasures it has
still to confirm: what an operator watches to see that every site is uplinking."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cloud_analyzer.deps import AnalyzerDep
from service_common.guard import require
from service_common.pagination import CursorQuery, Page, page_of
from service_common.redis_keys import EDGES_SEEN, ERASURES_PENDING
from service_common.times import rfc3339_ms

router = APIRouter(prefix="/v1/edges", tags=["edges"])
# An edge uplinks within seconds of a face, and its outbox retries every few seconds while the cloud is
# away: two minutes of silence means no faces, or no link.
SILENT_AFTER_MS = 120_000


class EdgeOut(BaseModel):
    edge_id: str
    trusted: bool = Field(description="named in ANALYZER_EDGES (only those may deliver)")
    last_contact_ms: int | None = Field(description="when it last delivered on Ingest (analyzer clock)")
    last_contact_at: str | None
    status: Literal["ok", "silent", "never"] = Field(
        description=f"ok: delivered within {SILENT_AFTER_MS // 1000} s; silent: not since; never: not once")
    erasures_pending: int = Field(description="erasures this edge has still to confirm")


@router.get("", response_model=Page[EdgeOut], dependencies=[require("sightings:read")])
def list_edges(analyzer: AnalyzerDep, cursor: CursorQuery = None,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Page[EdgeOut]:
    """Every trusted edge, and any other that once delivered; most recently heard from first."""
    seen = {k.decode(): int(v) for k, v in analyzer.store.r.hgetall(EDGES_SEEN).items()}
    pending: dict[str, int] = {}
    for raw in analyzer.store.r.smembers(ERASURES_PENDING):
        edge_id = raw.decode().partition("|")[2]
        pending[edge_id] = pending.get(edge_id, 0) + 1
    now = int(time.time() * 1000)
    rows = []
    for edge_id in sorted(set(analyzer.settings.edges) | set(seen)):
        last = seen.get(edge_id)
        status = "never" if last is None else "ok" if now - last <= SILENT_AFTER_MS else "silent"
        rows.append(EdgeOut(edge_id=edge_id, trusted=edge_id in analyzer.settings.edges, last_contact_ms=last,
                            last_contact_at=rfc3339_ms(last), status=status, erasures_pending=pending.get(edge_id, 0)))
    return page_of(rows, cursor, limit, lambda e: [e.last_contact_ms or 0, e.edge_id], (int, str), descending=True)
