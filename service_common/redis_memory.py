"""How full Redis is: what health and metrics report, so an operator sees a full Redis before the edges'
backlogs say so.

Compose and the launcher run Redis with `maxmemory` and `noeviction`: a full Redis refuses every write
that could grow memory (OutOfMemoryError), keeps what it holds, and the analyzer's Ingest answers the
edges RESOURCE_EXHAUSTED, so they keep their faces and retry, until retention or erasure frees memory.
Redis counts a write as over the limit when `used_memory - mem_not_counted_for_evict` (replication and
AOF buffers left out) exceeds `maxmemory`; the same figure is reported here. On Redis Cluster each
primary has its own limit and a full one refuses its slots' writes, so the fullest primary is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from redis.cluster import RedisCluster


@dataclass(frozen=True)
class RedisMemory:
    used_bytes: int  # what Redis counts against maxmemory
    max_bytes: int  # maxmemory; 0: no limit
    policy: str  # maxmemory-policy: noeviction in compose and the launcher

    @property
    def full(self) -> bool:
        """Writes that could grow memory are refused now."""
        return self.max_bytes > 0 and self.used_bytes > self.max_bytes

    @property
    def fraction(self) -> float | None:
        """used / maxmemory; None without a limit."""
        return self.used_bytes / self.max_bytes if self.max_bytes else None

    def as_dict(self) -> dict[str, object]:
        fraction = self.fraction
        return {"used_bytes": self.used_bytes, "max_bytes": self.max_bytes, "policy": self.policy,
                "used_fraction": None if fraction is None else round(fraction, 4), "full": self.full}


def _one(info: dict) -> RedisMemory:
    used = int(info.get("used_memory", 0)) - int(info.get("mem_not_counted_for_evict", 0))
    policy = info.get("maxmemory_policy", "")
    return RedisMemory(max(used, 0), int(info.get("maxmemory", 0)),
                       policy.decode() if isinstance(policy, bytes) else str(policy))


def redis_memory(client: redis.Redis | RedisCluster) -> RedisMemory:
    """Memory of a single Redis, or of the fullest primary of a cluster."""
    if isinstance(client, RedisCluster):
        replies = client.info("memory", target_nodes=RedisCluster.PRIMARIES)
        # One reply per primary by node name; redis-py answers a single primary's reply as it is.
        nodes = [_one(replies)] if "used_memory" in replies else [_one(info) for info in replies.values()]
        return max(nodes, key=lambda m: (m.full, m.fraction or 0.0, m.used_bytes))
    return _one(client.info("memory"))
