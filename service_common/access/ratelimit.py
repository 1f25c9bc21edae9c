"""Requests per second per API key, counted in Redis so every replica enforces one shared budget.

    fc:rate:{key_id}:{second} (rate_key)   int   requests in that wall-clock second (expires after 2 s)
"""

from __future__ import annotations

import math
import time

import redis

from service_common.redis_keys import rate_key


class RateLimiter:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def hit(self, key_id: str, per_second: int) -> float | None:
        """Count one request; None if within budget, else seconds until the next window opens."""
        now = time.time()
        second = int(now)
        pipe = self.r.pipeline(transaction=False)
        key = rate_key(key_id, second)
        pipe.incr(key)
        pipe.expire(key, 2)
        count, _ = pipe.execute()
        if count <= per_second:
            return None
        return max(0.001, math.ceil((second + 1 - now) * 1000) / 1000)
