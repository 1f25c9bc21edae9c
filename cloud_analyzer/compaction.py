"""After an erasure, Redis's files are rewritten without what it erased.

A deletion reaches Redis's memory at once, but the append-only file keeps every write since its last
rewrite (the erased face's HSET, its base layer included) and an RDB snapshot keeps the data as it was
when taken. An erasure sets `ERASURES_COMPACT`; any analyzer replica's `Compactor` that sees it takes
`ERASURES_COMPACT_LOCK` (expiring after the interval, so a burst of erasures makes one rewrite, and
replicas do not rewrite each other's erasures twice), clears the flag and asks Redis for a
BGREWRITEAOF (when appendonly is on) and a BGSAVE (when RDB snapshots are configured). The flag is
cleared before the rewrite forks: an erasure after that sets it again and gets a later rewrite. A
rewrite already running forked before this erasure, so it is not enough: Redis refuses the new one, the
flag is set again and the next round (every poll) asks again.
"""

from __future__ import annotations

import logging
import threading
import uuid

import redis

from service_common.redis_client import node_clients
from service_common.redis_keys import ERASURES_COMPACT, ERASURES_COMPACT_LOCK
from service_common.redis_oom import atomic_writes, set_nx_px

log = logging.getLogger(__name__)


class Compactor:
    def __init__(self, client: redis.Redis, interval_s: float, poll_s: float = 1.0) -> None:
        self.r, self.interval_ms, self.poll_s = client, int(interval_s * 1000), min(poll_s, interval_s)
        self.name = uuid.uuid4().hex[:12]
        self._said_no_files = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="erasure-compactor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def run_once(self) -> bool:
        """Start a rewrite if an erasure asked for one and none was started within the interval; True
        if Redis accepted it (or keeps no files to rewrite)."""
        if not self.r.exists(ERASURES_COMPACT):
            return False
        if not set_nx_px(self.r, ERASURES_COMPACT_LOCK, self.name, self.interval_ms):
            return False  # rewritten within the interval: the flag waits for the lock to expire
        self.r.delete(ERASURES_COMPACT)
        try:
            self._rewrite()
        except redis.ResponseError as exc:
            # A rewrite or save already running forked before this erasure: ask again at the next poll.
            # Anything else (a failed fork, a full disk): after the interval, not in a tight loop.
            busy = "in progress" in str(exc)
            log.log(logging.INFO if busy else logging.WARNING, "erasure compaction: %s; asking again", exc)
            atomic_writes(self.r, [("SET", ERASURES_COMPACT, 1), *([("DEL", ERASURES_COMPACT_LOCK)] if busy else [])])
            return False
        return True

    def _rewrite(self) -> None:
        for node in node_clients(self.r):  # Redis Cluster: every node keeps files of its own
            self._rewrite_node(node)

    def _rewrite_node(self, node: redis.Redis) -> None:
        aof, rdb = self._persistence(node)
        if aof:
            node.execute_command("BGREWRITEAOF")  # "started", or "scheduled" after a running BGSAVE
        if rdb:
            node.execute_command("BGSAVE", "SCHEDULE")  # scheduled after the rewrite just started
        if aof or rdb:
            log.info("erasure compaction: Redis rewriting its %s", " and ".join(
                n for n, on in (("append-only file", aof), ("RDB snapshot", rdb)) if on))
        elif not self._said_no_files:
            self._said_no_files = True
            log.warning("erasure compaction: Redis keeps no append-only file and no snapshots: erased data "
                        "was only ever in its memory (and is gone); nothing to rewrite")

    @staticmethod
    def _persistence(node: redis.Redis) -> tuple[bool, bool]:
        """(appendonly on, RDB snapshots configured)."""
        aof = bool(int(node.info("persistence").get("aof_enabled", 0)))
        try:
            rdb = bool(node.config_get("save").get("save"))
        except redis.ResponseError:  # CONFIG renamed or refused (a managed Redis): cannot tell
            log.warning("erasure compaction: CONFIG GET save refused; RDB snapshots, if any, keep erased data "
                        "until the next one")
            rdb = False
        return aof, rdb

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except redis.RedisError as exc:
                log.warning("erasure compaction: redis error %s; retrying", exc)
            self._stop.wait(self.poll_s)
