"""Ingest that a replica has before the edge hears of it: Redis Cluster only, on by default.

Redis replication is asynchronous. A primary answers the ingest script, the analyzer acknowledges the face,
the edge drops it from its outbox; if the primary is SIGKILLed before the write reached its replica, the
replica that takes over has never seen the face, and nobody has it any more. `WAIT n timeout` after the
write closes that gap: it returns once n replicas have acknowledged every earlier write of *its own
connection*. So the script and the WAIT go down one connection to the face's primary, in one pipeline (a
cluster client would hand WAIT, which names no key, to any node and connection).

Waited for: `min(wanted, replicas the slot's primary has)` (0 replicas: no wait). A WAIT that times out
with fewer acknowledgements (a replica down or far behind) still lets the face be acknowledged, logged:
the write is on the primary, as without this. When the face's slot is moving or its primary is gone
(MOVED, ASK, a connection error), the cluster client's own path runs the script instead (it follows
redirects and learns the new layout), without WAIT for that face.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import AskError, ClusterDownError, MovedError, NoScriptError, TryAgainError

log = logging.getLogger(__name__)
_REDIRECTED = (MovedError, AskError, TryAgainError, ClusterDownError, redis.ConnectionError, redis.TimeoutError)


class ReplicatedScript:
    """`script` run on a cluster so that `replicas` replicas of its slot's primary have its writes before
    it returns (see the module's text); on a standalone Redis, or with replicas 0, just the script."""

    def __init__(self, client: redis.Redis, script: Script, replicas: int, timeout_ms: int) -> None:
        self.client, self.script = client, script
        self.replicas = replicas if isinstance(client, RedisCluster) else 0
        self.timeout_ms = timeout_ms
        self.short = 0  # WAITs that timed out with fewer replicas than wanted (faces acknowledged anyway)

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        want = self._wanted(keys[0]) if self.replicas else 0
        if not want:
            return self.script(keys=keys, args=args)
        cluster: RedisCluster = self.client  # type: ignore[assignment]
        node = cluster.get_redis_connection(cluster.get_node_from_key(keys[0]))
        for _ in range(2):  # a second time once the node has loaded the script
            pipe = node.pipeline(transaction=False)
            pipe.evalsha(self.script.sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", want, self.timeout_ms)
            try:
                reply, acknowledged = pipe.execute()
            except NoScriptError:
                node.script_load(self.script.script)
                continue
            except _REDIRECTED:
                return self.script(keys=keys, args=args)  # the cluster client follows the slot
            if int(acknowledged) < want:
                self.short += 1
                log.warning("ingest: %d of %d replicas acknowledged a face within %d ms", acknowledged, want,
                            self.timeout_ms)
            return reply
        return self.script(keys=keys, args=args)

    def _wanted(self, key: str) -> int:
        """How many replicas to wait for: as many as asked, at most as many as the key's primary has now."""
        cluster: RedisCluster = self.client  # type: ignore[assignment]
        slot = cluster.keyslot(key)
        nodes = cluster.nodes_manager.slots_cache.get(slot, [])
        return min(self.replicas, max(len(nodes) - 1, 0))
