"""Webhook delivery: one reader of the events stream (consumer group `webhooks`) hands each event to a
lane per webhook: a bounded queue and one thread that signs, sends and retries in order. A slow or dead
receiver fills only its own lane; recognition and the other webhooks go on.

An event is acknowledged in the group once every webhook it was for has it delivered or given up; a
restart re-sends what was in flight (at least once: receivers dedupe on `webhook-id`)."""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time

import httpx
import redis

from cloud_analyzer.events.group_reader import GroupReader
from cloud_analyzer.events.schema import Event
from cloud_analyzer.events.signing import headers
from cloud_analyzer.events.url_policy import RefusedUrl, check_url
from cloud_analyzer.events.webhooks import Webhook, WebhookStore
from cloud_analyzer.metrics import EVENT_DELIVERIES
from service_common.redis_keys import EVENTS_GROUP_WEBHOOKS
from service_common.times import rfc3339_ms

log = logging.getLogger(__name__)
REFRESH_S = 2.0  # how often the registered webhooks are re-read when no event comes
JITTER = 0.2  # each retry's wait grows by up to this share, so receivers back up are not hit in step


def body_of(event: Event) -> bytes:
    """The Standard Webhooks payload: {type, timestamp, data}."""
    stamp = rfc3339_ms(event.decided_at_ms or event.captured_at_ms)
    return json.dumps({"type": event.type, "timestamp": stamp, "data": event.model_dump()},
                      separators=(",", ":")).encode()


class DeliveryPolicy:
    def __init__(self, retry_s: list[float], timeout_s: float, max_failures: int, queue_size: int,
                 allow_private: bool) -> None:
        self.retry_s, self.timeout_s, self.max_failures = retry_s, timeout_s, max_failures
        self.queue_size, self.allow_private = queue_size, allow_private


class Lane:
    """One webhook's queue and sender thread."""

    def __init__(self, hook: Webhook, deliverer: WebhookDeliverer) -> None:
        self.hook, self.d = hook, deliverer
        self.queue: queue.Queue[Event] = queue.Queue(deliverer.policy.queue_size)
        self.gone = threading.Event()  # deleted or disabled: drain without sending
        self.http = httpx.Client(timeout=deliverer.policy.timeout_s, follow_redirects=False)
        self.thread = threading.Thread(target=self._run, name=f"webhook-{hook.webhook_id[:8]}", daemon=True)
        self.thread.start()

    def offer(self, event: Event) -> bool:
        try:
            self.queue.put_nowait(event)
            return True
        except queue.Full:
            return False

    def _attempt(self, event: Event, body: bytes) -> tuple[int | None, str | None]:
        try:
            check_url(self.hook.url, self.d.policy.allow_private)  # again: the name may point elsewhere now
        except RefusedUrl as exc:
            return None, f"refused: {exc}"
        try:
            response = self.http.post(self.hook.url, content=body,
                                      headers=headers(self.hook.secret, f"msg_{event.id}", int(time.time()), body))
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"HTTP {response.status_code}"

    def deliver(self, event: Event) -> None:
        body = body_of(event)
        policy = self.d.policy
        status: int | None = None
        error: str | None = None
        for attempt in range(len(policy.retry_s) + 1):
            if attempt:
                wait = policy.retry_s[attempt - 1] * (1 + random.random() * JITTER)
                if self.gone.wait(wait) or self.d.stopping:
                    return
            status, error = self._attempt(event, body)
            if error is None or status == 410:  # 410 Gone: the receiver asks to stop (Standard Webhooks)
                break
        if self.d.stopping:
            return  # not recorded nor acknowledged: the next start sends it again
        EVENT_DELIVERIES.labels("webhook", "ok" if error is None else "failed").inc()
        if status == 410:
            self.d.store.record(self.hook.webhook_id, status, error, False, policy.max_failures)
            self.d.store.disable(self.hook.webhook_id, "the receiver answered 410 Gone")
            self.gone.set()
        elif self.d.store.record(self.hook.webhook_id, status, error, error is None, policy.max_failures):
            log.warning("webhook %s disabled after %d failed events", self.hook.webhook_id, policy.max_failures)
            self.gone.set()

    def _run(self) -> None:
        while not self.d.stopping:
            try:
                event = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                if not self.gone.is_set():
                    self.deliver(event)
            except redis.RedisError as exc:  # the outcome is not recorded; the event is still acknowledged
                log.warning("webhook %s: recording a delivery failed: %s", self.hook.webhook_id, exc)
            except Exception:
                log.exception("webhook %s: delivery failed", self.hook.webhook_id)
            if not self.d.stopping:
                self.d.done(event.id)

    def close(self) -> None:
        self.gone.set()
        self.thread.join(timeout=2)
        self.http.close()


class WebhookDeliverer(GroupReader):
    def __init__(self, client: redis.Redis, consumer: str, policy: DeliveryPolicy) -> None:
        super().__init__(client, EVENTS_GROUP_WEBHOOKS, consumer)
        self.store, self.policy = WebhookStore(client), policy
        self.lanes: dict[str, Lane] = {}
        self._waiting: dict[str, int] = {}  # event id -> lanes that still have it
        self._lock = threading.Lock()
        self._next_refresh = 0.0

    def _refresh(self) -> list[Webhook]:
        """Lanes for the webhooks registered now (on any replica), closed for the deleted and disabled."""
        self._next_refresh = time.monotonic() + REFRESH_S
        hooks = [h for h in self.store.all() if h.enabled]
        current = {h.webhook_id: h for h in hooks}
        for webhook_id in list(self.lanes):
            lane = self.lanes[webhook_id]
            fresh = current.get(webhook_id)
            if fresh is None or fresh.url != lane.hook.url or fresh.secret != lane.hook.secret:
                lane.gone.set()  # drains its queue without sending; its thread ends with the deliverer
                del self.lanes[webhook_id]
        for hook in hooks:
            if hook.webhook_id not in self.lanes:
                self.lanes[hook.webhook_id] = Lane(hook, self)
            else:
                self.lanes[hook.webhook_id].hook = hook
        return hooks

    def handle(self, events: list[Event]) -> list[str]:
        hooks = self._refresh()
        done = []
        for event in events:
            lanes = [self.lanes[h.webhook_id] for h in hooks if h.want.matches(event)]
            with self._lock:
                self._waiting[event.id] = self._waiting.get(event.id, 0) + len(lanes)
            for lane in lanes:
                if not lane.offer(event):  # its receiver is this far behind: this event is failed for it
                    self.store.record(lane.hook.webhook_id, None, "queue full: the receiver is too slow", False,
                                      self.policy.max_failures)
                    self.done(event.id, ack=False)
            with self._lock:
                if self._waiting.get(event.id) == 0:
                    del self._waiting[event.id]
                    done.append(event.id)
        return done

    def tick(self) -> None:
        """Between events too: a webhook deleted or disabled (on any replica) stops retrying within ~2 s."""
        if time.monotonic() >= self._next_refresh:
            self._refresh()

    def done(self, event_id: str, ack: bool = True) -> None:
        """One lane has finished with an event; the last one acknowledges it."""
        with self._lock:
            left = self._waiting.get(event_id, 0) - 1
            if left > 0 or not ack:
                self._waiting[event_id] = max(left, 0)
                return
            self._waiting.pop(event_id, None)
        try:
            self.ack(event_id)
        except redis.RedisError as exc:  # stays pending: re-sent after a restart (receivers dedupe)
            log.warning("webhooks: acknowledging %s failed: %s", event_id, exc)

    def stop(self) -> None:
        super().stop()
        for lane in list(self.lanes.values()):
            lane.close()
