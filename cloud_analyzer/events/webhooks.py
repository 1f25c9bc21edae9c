"""Registered webhooks in Redis: where to send events, which ones, the signing secret, and how delivery
is going (counters and the last attempt's outcome, written by the deliverer)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

import redis

from cloud_analyzer.events.schema import EventFilter
from cloud_analyzer.events.signing import new_secret
from service_common.redis_keys import WEBHOOKS, webhook_key

# Delivery outcomes land only on a webhook that still exists: a deletion is never undone by a late
# delivery. KEYS: the webhook. ARGV: n_increments, then field/amount pairs, then field/value pairs to set.
_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = tonumber(ARGV[1])
for i = 2, 1 + 2 * n, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
if #ARGV > 1 + 2 * n then redis.call('HSET', KEYS[1], unpack(ARGV, 2 + 2 * n)) end
return 1
"""
COUNTERS = ("delivered", "failed", "consecutive_failures")


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    url: str
    want: EventFilter
    secret: str
    created_at_ms: int
    enabled: bool
    disabled_reason: str | None
    delivered: int
    failed: int
    consecutive_failures: int
    last_status: int | None
    last_error: str | None
    last_attempt_at_ms: int | None


def _webhook(raw: dict[bytes, bytes]) -> Webhook | None:
    if not raw:
        return None
    f = {k.decode(): v.decode() for k, v in raw.items()}
    return Webhook(
        webhook_id=f["webhook_id"], url=f["url"], want=EventFilter(**json.loads(f.get("filter") or "{}")),
        secret=f["secret"], created_at_ms=int(f["created_at_ms"]), enabled=f.get("enabled") == "1",
        disabled_reason=f.get("disabled_reason") or None, delivered=int(f.get("delivered") or 0),
        failed=int(f.get("failed") or 0), consecutive_failures=int(f.get("consecutive_failures") or 0),
        last_status=int(f["last_status"]) if f.get("last_status") else None,
        last_error=f.get("last_error") or None,
        last_attempt_at_ms=int(f["last_attempt_at_ms"]) if f.get("last_attempt_at_ms") else None,
    )


class WebhookStore:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._record = client.register_script(_RECORD)

    def create(self, url: str, want: EventFilter) -> Webhook:
        webhook_id, now = secrets.token_hex(16), int(time.time() * 1000)
        fields = {"webhook_id": webhook_id, "url": url, "filter": json.dumps(want.given()), "secret": new_secret(),
                  "created_at_ms": now, "enabled": "1"}
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(webhook_key(webhook_id), mapping=fields)
        pipe.zadd(WEBHOOKS, {webhook_id: now})
        pipe.execute()
        return self.get(webhook_id)  # type: ignore[return-value]

    def get(self, webhook_id: str) -> Webhook | None:
        return _webhook(self.r.hgetall(webhook_key(webhook_id)))

    def page(self, after: tuple[int, str] | None, limit: int) -> tuple[list[Webhook], tuple[int, str] | None]:
        """Oldest first; `after` is the (created_at_ms, id) of the previous page's last webhook."""
        lo = f"{after[0]}" if after else "-inf"
        ids = [(m.decode(), int(s)) for m, s in self.r.zrangebyscore(WEBHOOKS, lo, "+inf", withscores=True)]
        if after:
            ids = [(i, s) for i, s in ids if (s, i) > (after[0], after[1])]
        ids.sort(key=lambda p: (p[1], p[0]))
        hooks = [w for w in (self.get(i) for i, _ in ids[: limit + 1]) if w is not None]
        more = len(hooks) > limit
        hooks = hooks[:limit]
        return hooks, ((hooks[-1].created_at_ms, hooks[-1].webhook_id) if more and hooks else None)

    def all(self) -> list[Webhook]:
        ids = [m.decode() for m in self.r.zrange(WEBHOOKS, 0, -1)]
        pipe = self.r.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(webhook_key(i))
        return [w for w in (_webhook(raw) for raw in pipe.execute()) if w is not None]

    def delete(self, webhook_id: str) -> bool:
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(webhook_key(webhook_id))
        pipe.zrem(WEBHOOKS, webhook_id)
        return bool(pipe.execute()[0])

    def enable(self, webhook_id: str) -> bool:
        """On again after it was disabled; its failure streak starts from zero."""
        return bool(self._record(keys=[webhook_key(webhook_id)],
                                 args=[0, "enabled", "1", "disabled_reason", "", "consecutive_failures", 0]))

    def record(self, webhook_id: str, status: int | None, error: str | None, delivered: bool,
               disable_after: int) -> bool:
        """One event's final outcome for this webhook. True if the webhook is (now) disabled."""
        key = webhook_key(webhook_id)
        now = int(time.time() * 1000)
        sets = ["last_status", "" if status is None else status, "last_error", error or "", "last_attempt_at_ms", now]
        if delivered:
            self._record(keys=[key], args=[1, "delivered", 1, *sets, "consecutive_failures", 0])
            return False
        self._record(keys=[key], args=[2, "failed", 1, "consecutive_failures", 1, *sets])
        streak = self.r.hget(key, "consecutive_failures")
        if streak is not None and int(streak) >= disable_after:
            self.disable(webhook_id, f"{int(streak)} events failed in a row")
            return True
        return False

    def disable(self, webhook_id: str, reason: str) -> None:
        self._record(keys=[webhook_key(webhook_id)], args=[0, "enabled", "0", "disabled_reason", reason])
