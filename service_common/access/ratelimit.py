"""Requests per second per API key, counted in Redis so every replica enforces one shared budget.

    fc:rate:{key_id}:{second} (rate_key)   int   requests in that wall-clock second (expires after 2 s)
"""

from __future__ import annotations

import math
import time

import redis

from service_common.redis_keys import rate_key
from service_common.redis_oom import atomic_writes


class RateLimiter:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def hit(self, key_id: str, per_second: int) -> float | None:
        """Count one request; None if within budget, else seconds until the next window opens."""
        now = time.time()
        second = int(now)
        key = rate_key(key_id, second)
        # Counted even when Redis is full (one short-lived counter per key): otherwise every request, the
        # erasures that would free memory included, fails.
        count, _ = atomic_writes(self.r, [("INCR", key), ("EXPIRE", key, 2)])
        if count <= per_second:
            return None
        return max(0.001, math.ceil((second + 1 - now) * 1000) / 1000)
