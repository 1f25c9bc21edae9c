"""Requests per second per API key, counted in Redis so every replica enforces one shared budget.

    fc:rate:{key_id}:{second}   int   requests in that wall-clock second (expires after 2 s)
"""

from __future__ import annotations

import math
import time

import redis


class RateLimiter:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def hit(self, key_id: str, per_second: int) -> float | None:
        """Count one request; None if within budget, else seconds until the next window opens."""
        now = time.time()
        second = int(now)
        pipe = self.r.pipeline(transaction=False)
        pipe.incr(f"fc:rate:{key_id}:{second}")
        pipe.expire(f"fc:rate:{key_id}:{second}", 2)
        count, _ = pipe.execute()
        if count <= per_second:
            return None
        return max(0.001, math.ceil((second + 1 - now) * 1000) / 1000)
