"""Denied requests (401, 403, 429), counted per client address instead of one audit entry each.

A denial costs the client one unit of its denial budget (`budget` per minute, a sliding window shared
by every replica) and one increment in its window's hash; a client over its budget is answered 429
before its key is even looked up. Once a window (a minute by default) has ended, one `access.denied`
audit entry per client (and key, if it presented a valid one) says how many of each status it got, and
which endpoint it tried first. So a flood of bad requests adds at most one audit entry per address per minute.

    fc:denied:{window}:{client}:{key_id} (denial_window_key)   hash   client key_id first s401 s403 s429
    fc:denied:pending (DENIALS_PENDING)   zset   those hashes by the end of their window

IPv6 clients count per /64 (one host usually holds a whole /64, and could otherwise rotate addresses).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time

import redis

from service_common.access.audit import AuditLog
from service_common.access.ratelimit import RateLimiter
from service_common.redis_keys import DENIALS_PENDING, denial_window_key

log = logging.getLogger(__name__)
STATUSES = (401, 403, 429)
KEEP_S = 86_400  # a window hash no flusher collected (every service down) expires on its own

# KEYS: window hash, pending zset; ARGV: status field, client, key id, first action, window start, window end.
COUNT = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if redis.call('HSETNX', KEYS[1], 'client', ARGV[2]) == 1 then
  redis.call('HSET', KEYS[1], 'key_id', ARGV[3], 'first', ARGV[4], 'window_start_ms', ARGV[5])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
  redis.call('ZADD', KEYS[2], ARGV[6], KEYS[1])
end
"""
# KEYS: pending zset; ARGV: now (ms), batch. Claims windows that ended (one replica each), returns their
# hashes' fields and deletes them.
CLAIM = """
local out = {}
for _, h in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  if redis.call('ZREM', KEYS[1], h) == 1 then
    table.insert(out, redis.call('HGETALL', h))
    redis.call('DEL', h)
  end
end
return out
"""


def client_bucket(host: str) -> str:
    """The address a client's denials count against: IPv4 as is, IPv6 as its /64."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class Denials:
    def __init__(self, client: redis.Redis, limiter: RateLimiter, audit: AuditLog, budget_per_min: int,
                 window_s: float = 60.0) -> None:
        self.r, self.limiter, self.audit, self.budget = client, limiter, audit, budget_per_min
        self.window_ms = int(window_s * 1000)
        self._count = client.register_script(COUNT)
        self._claim = client.register_script(CLAIM)

    def over_budget(self, client: str) -> float | None:
        """Seconds until this client may be denied again, if it has used its budget; else None."""
        return self.limiter.over(f"denied:{client}", self.budget, 60.0)

    def deny(self, client: str, status: int, action: str, key_id: str = "") -> None:
        """Count one denial: against the client's budget, and in its window's summary."""
        self.limiter.hit(f"denied:{client}", self.budget, 60.0)
        now = int(time.time() * 1000)
        start = now - now % self.window_ms
        self._count(keys=[denial_window_key(start, client, key_id), DENIALS_PENDING],
                    args=[f"s{status}", client, key_id, action, start, start + self.window_ms, KEEP_S])

    def flush(self, now_ms: int | None = None, batch: int = 500) -> int:
        """One `access.denied` audit entry per window that has ended; returns how many were written."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        written = 0
        while rows := self._claim(keys=[DENIALS_PENDING], args=[now_ms, batch]):
            for row in rows:
                f = {row[i].decode(): row[i + 1].decode() for i in range(0, len(row), 2)}
                counts = {s: int(f.get(f"s{s}", 0)) for s in STATUSES}
                start = int(f.get("window_start_ms", 0))
                detail = (f"{sum(counts.values())} denied in {self.window_ms / 1000:g} s from "
                          f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start / 1000))}: "
                          + ", ".join(f"{n}x {s}" for s, n in counts.items() if n) + f"; first: {f.get('first', '')}")
                self.audit.record("access.denied", "denied", max(counts, key=lambda s: counts[s]),
                                  key_id=f.get("key_id", ""), client=f.get("client", ""), detail=detail)
                written += 1
            if len(rows) < batch:
                break
        return written


class DenialFlusher:
    """Writes the denial summaries of ended windows every `interval_s` (any replica may: each window is
    claimed by one)."""

    def __init__(self, denials: Denials, interval_s: float | None = None) -> None:
        self.denials = denials
        self.interval_s = interval_s or min(5.0, denials.window_ms / 4000)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="denial-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._flush()

    def _flush(self) -> None:
        try:
            self.denials.flush()
        except redis.RedisError as exc:  # Redis away: the windows wait in Redis for the next round
            log.warning("denial summaries not written yet: %s", exc)
