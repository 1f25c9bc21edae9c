"""Webhooks over REST, for holders of `webhooks:admin`: register (the signing secret is shown once), list,
read (with delivery state), enable again, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response
from pydantic import BaseModel, Field

from cloud_analyzer.deps import AnalyzerDep
from cloud_analyzer.events.router import STATUSES
from cloud_analyzer.events.schema import EventFilter
from cloud_analyzer.events.url_policy import RefusedUrl, check_url
from cloud_analyzer.events.webhooks import Webhook, WebhookStore
from service_common.guard import Caller, require
from service_common.ids import HEX32_PATTERN, ID_PATTERN
from service_common.pagination import CursorQuery, Page, decode_cursor, encode_cursor
from service_common.times import rfc3339_ms

router = APIRouter(tags=["webhooks"])
WebhookId = Annotated[str, Path(pattern=HEX32_PATTERN)]


class WebhookIn(BaseModel):
    url: str = Field(max_length=2000, description="http(s) URL the events are POSTed to")
    camera_id: str | None = Field(None, pattern=ID_PATTERN)
    identity_id: str | None = Field(None, pattern=ID_PATTERN)
    status: str | None = Field(None, pattern=STATUSES)
    cluster_id: str | None = Field(None, pattern=ID_PATTERN)


class WebhookOut(BaseModel):
    webhook_id: str
    url: str
    filter: dict[str, str] = Field(description="only events matching every one of these are sent")
    created_at: str
    enabled: bool
    disabled_reason: str | None
    delivered: int = Field(description="events delivered (2xx)")
    failed: int = Field(description="events given up on after every retry (or dropped: queue full)")
    consecutive_failures: int
    last_status: int | None = Field(description="HTTP status of the last attempt; null: no response")
    last_error: str | None
    last_attempt_at: str | None


class NewWebhook(WebhookOut):
    secret: str = Field(description="the signing secret (`whsec_...`): shown this once")


def out(hook: Webhook) -> WebhookOut:
    return WebhookOut(webhook_id=hook.webhook_id, url=hook.url, filter=hook.want.given(),
                      created_at=rfc3339_ms(hook.created_at_ms), enabled=hook.enabled,
                      disabled_reason=hook.disabled_reason, delivered=hook.delivered, failed=hook.failed,
                      consecutive_failures=hook.consecutive_failures, last_status=hook.last_status,
                      last_error=hook.last_error, last_attempt_at=rfc3339_ms(hook.last_attempt_at_ms))


def _store(analyzer) -> WebhookStore:
    return WebhookStore(analyzer.store.r)


def _found(analyzer, webhook_id: str) -> Webhook:
    hook = _store(analyzer).get(webhook_id)
    if hook is None:
        raise HTTPException(404, f"webhook {webhook_id} not found")
    return hook


@router.post("/v1/webhooks", status_code=201, response_model=NewWebhook)
def create_webhook(analyzer: AnalyzerDep, body: WebhookIn,
                   caller: Annotated[Caller, require("webhooks:admin", "webhook.create")]) -> NewWebhook:
    try:
        check_url(body.url, analyzer.settings.webhook_allow_private)
    except RefusedUrl as exc:
        raise HTTPException(422, f"url: {exc}") from exc
    want = EventFilter(camera_id=body.camera_id, identity_id=body.identity_id, status=body.status,
                       cluster_id=body.cluster_id)
    hook = _store(analyzer).create(body.url, want)
    caller.audit["detail"] = f"webhook {hook.webhook_id} to {body.url} filter {want.given() or 'none'}"
    return NewWebhook(**out(hook).model_dump(), secret=hook.secret)


@router.get("/v1/webhooks", response_model=Page[WebhookOut],
            dependencies=[require("webhooks:admin", "webhook.list")])
def list_webhooks(analyzer: AnalyzerDep, cursor: CursorQuery = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Page[WebhookOut]:
    after = tuple(decode_cursor(cursor, (int, str))) if cursor else None
    hooks, last = _store(analyzer).page(after, limit)  # type: ignore[arg-type]
    return Page[WebhookOut](items=[out(h) for h in hooks], next_cursor=encode_cursor(list(last)) if last else None)


@router.get("/v1/webhooks/{webhook_id}", response_model=WebhookOut,
            dependencies=[require("webhooks:admin", "webhook.read")])
def get_webhook(analyzer: AnalyzerDep, webhook_id: WebhookId) -> WebhookOut:
    return out(_found(analyzer, webhook_id))


@router.post("/v1/webhooks/{webhook_id}/enable", response_model=WebhookOut,
             dependencies=[require("webhooks:admin", "webhook.enable")])
def enable_webhook(analyzer: AnalyzerDep, webhook_id: WebhookId) -> WebhookOut:
    """On again after failures disabled it; its failure streak starts from zero."""
    _found(analyzer, webhook_id)
    _store(analyzer).enable(webhook_id)
    return out(_found(analyzer, webhook_id))


@router.delete("/v1/webhooks/{webhook_id}", status_code=204,
               dependencies=[require("webhooks:admin", "webhook.delete")])
def delete_webhook(analyzer: AnalyzerDep, webhook_id: WebhookId) -> Response:
    if not _store(analyzer).delete(webhook_id):
        raise HTTPException(404, f"webhook {webhook_id} not found")
    return Response(status_code=204)
