"""Sliding-window rate limits in Redis, shared by every replica: at most `limit` admitted requests in
*any* window of `window_s` seconds, not per wall-clock second (a fixed window lets 2x through when a
burst straddles its edge).

    fc:rate:{name} (rate_key)   zset   one member per admitted request, scored by Redis time in µs;
                                       expires one window after the last request

One Lua script checks and records atomically, on Redis's clock (replicas' clocks may differ). Memory per
name is bounded by `limit` members.
"""

from __future__ import annotations

import secrets

import redis

from service_common.redis_keys import rate_key

# KEYS[1] the log; ARGV: limit, window (µs), a unique member suffix, record (1) or only look (0).
# Returns -1 when admitted (or, when only looking, when one more would be), else µs until a slot frees.
# allow-oom: counted even when Redis is full (service_common/redis_oom.py), or every request, the erasures
# that would free memory included, would fail.
SLIDING_WINDOW = """#!lua flags=allow-oom
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  if ARGV[4] == '1' then
    redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
    redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  end
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


class RateLimiter:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self._script = client.register_script(SLIDING_WINDOW)

    def hit(self, name: str, limit: int, window_s: float = 1.0) -> float | None:
        """Count one request of `name`; None if admitted, else seconds until one would be."""
        return self._run(name, limit, window_s, record=True)

    def over(self, name: str, limit: int, window_s: float = 1.0) -> float | None:
        """Whether `name` has used its budget, without counting anything: None if one more fits."""
        return self._run(name, limit, window_s, record=False)

    def _run(self, name: str, limit: int, window_s: float, record: bool) -> float | None:
        wait_us = int(self._script(keys=[rate_key(name)],
                                   args=[limit, int(window_s * 1e6), secrets.token_hex(4), int(record)]))
        return None if wait_us < 0 else wait_us / 1e6
