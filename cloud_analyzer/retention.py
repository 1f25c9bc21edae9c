"""Retention: what the cloud keeps stays bounded under a steady load.

Every `interval_s`, one analyzer (a Redis lock; any replica may hold it):
- forgets faces captured more than `max_age_s` ago: record, base layer, sighting, track and history
  indexes, whole history days at once (edges expire their own pixels: EDGE_RETENTION_S);
- trims the event stream to the same age;
- trims the ingest stream below the oldest entry still unacknowledged or not yet delivered, so
  processed faces do not pile up in it;
- removes consumers of the ingest group that have been idle for `dead_consumer_s` and hold nothing
  (their pending faces were already claimed by the live workers).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

from cloud_analyzer.erasure import Eraser
from cloud_analyzer.history import History
from service_common.redis_keys import EVENTS_STREAM, FACE_INDEXES, GROUP, INGEST_STREAMS, RETENTION_LOCK
from service_common.redis_oom import set_nx_px

log = logging.getLogger(__name__)
BATCH = 1_000


@dataclass
class RetentionRound:
    faces_expired: int = 0
    history_days_dropped: int = 0
    events_trimmed: int = 0
    ingest_trimmed: int = 0
    consumers_removed: int = 0


class Retention:
    def __init__(self, client: redis.Redis, max_age_s: float | None, interval_s: float = 60.0,
                 dead_consumer_s: float = 3600.0) -> None:
        self.r, self.max_age_s = client, max_age_s
        self.interval_s, self.dead_consumer_s = interval_s, dead_consumer_s
        self.eraser, self.history = Eraser(client), History(client)
        self.last = RetentionRound()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def run_once(self, now_ms: int | None = None) -> RetentionRound:
        now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
        done = RetentionRound()
        if self.max_age_s is not None:
            cutoff = now_ms - int(self.max_age_s * 1000)
            done.history_days_dropped = self.history.drop_days_before(cutoff)  # whole days at once
            for index in FACE_INDEXES:  # each face shard's index
                while True:  # in batches: a backlog of old faces does not block Redis in one call
                    old = [f.decode() for f in self.r.zrangebyscore(index, "-inf", f"({cutoff}", start=0, num=BATCH)]
                    if not old:
                        break
                    erased, _ = self.eraser.forget(old)
                    self.r.zrem(index, *old)  # records that were already gone leave no index entry behind
                    done.faces_expired += len(erased)
            done.events_trimmed = int(self.r.xtrim(EVENTS_STREAM, minid=cutoff, approximate=False))
        done.ingest_trimmed = sum(self._trim_ingest(stream) for stream in INGEST_STREAMS)
        done.consumers_removed = sum(self._remove_dead_consumers(stream) for stream in INGEST_STREAMS)
        self.last = done
        return done

    def run_locked(self, now_ms: int | None = None) -> RetentionRound | None:
        """One round, unless another replica holds this interval's lock (None): the others would only
        repeat the same deletions. The lock is taken even when Redis is full: retention is what frees it
        (its deletions run under OOM; a plain SET NX would be refused)."""
        if not set_nx_px(self.r, RETENTION_LOCK, 1, int(self.interval_s * 1000)):
            return None
        return self.run_once(now_ms)

    def _trim_ingest(self, stream: str) -> int:
        """Entries every consumer has acknowledged are history: drop them. Keep everything from the
        oldest pending entry, and everything not yet delivered to the group."""
        try:
            group = next(g for g in self.r.xinfo_groups(stream) if g["name"].decode() == GROUP)
        except (redis.ResponseError, StopIteration):  # no stream or no group yet
            return 0
        keep_from = _next_id(group["last-delivered-id"].decode())
        pending = self.r.xpending(stream, GROUP)
        if pending["pending"]:
            keep_from = min(keep_from, pending["min"].decode(), key=_id_key)
        return int(self.r.xtrim(stream, minid=keep_from, approximate=False))

    def _remove_dead_consumers(self, stream: str) -> int:
        try:
            consumers = self.r.xinfo_consumers(stream, GROUP)
        except redis.ResponseError:
            return 0
        removed = 0
        for consumer in consumers:
            if consumer["pending"] == 0 and consumer["idle"] > self.dead_consumer_s * 1000:
                self.r.xgroup_delconsumer(stream, GROUP, consumer["name"])
                removed += 1
        return removed

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                done = self.run_locked()
                if done is not None and (done.faces_expired or done.consumers_removed):
                    log.info("retention: %s", done)
            except redis.RedisError as exc:
                log.warning("retention: redis error %s; next round in %.0fs", exc, self.interval_s)


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"
