"""Ingest that a replica has before the edge hears of it: Redis Cluster only, on by default.

Redis replication is asynchronous. A primary answers the ingest script, the analyzer acknowledges the face,
the edge drops it from its outbox; if the primary is SIGKILLed before the write reached its replica, the
replica that takes over has never seen the face, and nobody has it any more. `WAIT n timeout` after the
write closes that gap: it returns once n replicas have acknowledged every earlier write of *its own
connection*. So the script and the WAIT go down one connection to the face's primary, in one pipeline (a
cluster client would hand WAIT, which names no key, to any node and connection).

Waited for: `min(wanted, replicas connected to the face's primary)` (0 replicas: no wait). A WAIT that times out
with fewer acknowledgements (a replica down or far behind) still lets the face be acknowledged, logged:
the write is on the primary, as without this. When the face's slot is moving or its primary is gone
(MOVED, ASK, a connection error), the cluster client's own path runs the script instead (it follows
redirects and learns the new layout), without WAIT for that face.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import AskError, ClusterDownError, MovedError, NoScriptError, TryAgainError

log = logging.getLogger(__name__)
REPLICAS_FRESH_S = 5.0  # how long a primary's count of connected replicas is trusted
_REDIRECTED = (MovedError, AskError, TryAgainError, ClusterDownError, redis.ConnectionError, redis.TimeoutError)


class ReplicatedScript:
    """`script` run on a cluster so that `replicas` replicas of its slot's primary have its writes before
    it returns (see the module's text); on a standalone Redis, or with replicas 0, just the script."""

    def __init__(self, client: redis.Redis, script: Script, replicas: int, timeout_ms: int) -> None:
        self.client, self.script = client, script
        self.replicas = replicas if isinstance(client, RedisCluster) else 0
        self.timeout_ms = timeout_ms
        self.short = 0  # WAITs that timed out with fewer replicas than wanted (faces acknowledged anyway)
        self._connected: dict[str, tuple[int, float]] = {}  # primary -> (replicas connected, valid until)

    def __call__(self, keys: list[str], args: list[Any]) -> Any:
        if not self.replicas:
            return self.script(keys=keys, args=args)
        cluster: RedisCluster = self.client  # type: ignore[assignment]
        primary = cluster.get_node_from_key(keys[0])
        node = cluster.get_redis_connection(primary)
        want = self._wanted(primary.name, node)
        if not want:
            return self.script(keys=keys, args=args)
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

    def _wanted(self, name: str, node: redis.Redis) -> int:
        """How many replicas to wait for: as many as asked, at most as many as the primary has connected
        (its INFO, re-read every few seconds: the client's slot table lists a replica only once its
        replication offset has moved, and learns of new ones only on a redirect)."""
        count, fresh_until = self._connected.get(name, (0, 0.0))
        if time.monotonic() >= fresh_until:
            try:
                count = int(node.info("replication").get("connected_slaves", 0))
            except redis.RedisError:
                count = 0
            self._connected[name] = (count, time.monotonic() + REPLICAS_FRESH_S)
        return min(self.replicas, count)
