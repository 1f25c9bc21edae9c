"""Retention: what the cloud keeps stays bounded under a steady load.

Every `interval_s`, one analyzer (a Redis lock; any replica may hold it):
- forgets faces captured more than `max_age_s` ago: record, base layer, sighting, track and history
  indexes, whole history days at once, found from their index (`HISTORY_DAYS`, no keyspace scan) and
  deleted key by key, so each command touches one key (Redis Cluster); edges expire their own pixels
  (EDGE_RETENTION_S);
- trims the event stream to the same age;
- trims each face shard's ingest stream below the oldest entry still unacknowledged or not yet delivered, so
  processed faces do not pile up in it;
- removes consumers of the ingest group that have been idle for `dead_consumer_s` and hold nothing
  (their pending faces were already claimed by the live workers).

Everything it does runs when Redis is full (maxmemory with `noeviction`): it deletes, and its few writes
(the lock, the one-time index of older history days) go through allow-oom scripts (service_common/redis_oom.py).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

from cloud_analyzer.erasure import Eraser
from service_common.redis_keys import (
    EVENTS_STREAM,
    FACE_INDEXES,
    GROUP,
    HISTORY_DAYS,
    HISTORY_DAYS_SCHEMA,
    HISTORY_PATTERN,
    INGEST_STREAMS,
    RETENTION_LOCK,
    history_cameras_key,
    history_days_member,
    history_key,
    parse_history_key,
)
from service_common.redis_oom import set_nx_px, write_key

log = logging.getLogger(__name__)
BATCH = 1_000
DAY_MS = 86_400_000


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
        self.eraser, self.history = Eraser(client), HistoryDays(client)
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
            done.history_days_dropped = self.history.drop_before(cutoff)  # whole days at once
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


class HistoryDays:
    """The history partitions by UTC day: a day goes whole once it ended before the cutoff."""

    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def drop_before(self, cutoff_ms: int) -> int:
        """Delete every model's partitions of the days that end before `cutoff_ms`; how many (model, day)."""
        self.index_older_days()
        first_kept = cutoff_ms - cutoff_ms % DAY_MS
        doomed = [(m.decode(), int(day)) for m, day in
                  self.r.zrangebyscore(HISTORY_DAYS, "-inf", f"({first_kept}", withscores=True)]
        for start in range(0, len(doomed), BATCH):
            self._drop(doomed[start : start + BATCH])
        return len(doomed)

    def _drop(self, days: list[tuple[str, int]]) -> None:
        """Each camera leaves the day's cameras set before its partition is deleted, and the day leaves the
        index only once that set is empty, checked again after the removal (put back if a camera came
        meanwhile). A late decision for the day (an edge's old backlog) adds its camera to the set before
        the day to the index (Store.record_result), so its partition is always found, this pass or the
        next round. A crash only repeats work."""
        left = {member: day_ms for member, day_ms in days}
        models = {member: member.rpartition(":")[0] for member in left}
        while left:
            cameras = self._cameras(left, models)
            if empty := [member for member, seen in cameras.items() if not seen]:
                self.r.zrem(HISTORY_DAYS, *empty)
                came_back = self._cameras({m: left[m] for m in empty}, models)
                if back := {m: left[m] for m, seen in came_back.items() if seen}:
                    write_key(self.r, "ZADD", HISTORY_DAYS, *(v for m, day in back.items() for v in (day, m)))
            left = {member: left[member] for member, seen in cameras.items() if seen}
            pipe = self.r.pipeline(transaction=False)
            for member, day_ms in left.items():
                pipe.srem(history_cameras_key(models[member], day_ms), *cameras[member])
            pipe.execute()
            pipe = self.r.pipeline(transaction=False)
            for member, day_ms in left.items():
                for camera in cameras[member]:
                    pipe.delete(history_key(models[member], day_ms, camera))  # one key a command: any slot
            pipe.execute()

    def _cameras(self, days: dict[str, int], models: dict[str, str]) -> dict[str, list[str]]:
        pipe = self.r.pipeline(transaction=False)
        for member, day_ms in days.items():
            pipe.smembers(history_cameras_key(models[member], day_ms))
        return {member: sorted(c.decode() for c in seen) for member, seen in zip(days, pipe.execute())}

    def index_older_days(self) -> None:
        """Once: the days written before the index existed go into it (one SCAN of the keyspace, every node's
        on a cluster). Allow-oom writes: this runs on a full Redis too, before retention can free it."""
        if self.r.exists(HISTORY_DAYS_SCHEMA):
            return
        found: dict[str, int] = {}
        for key in self.r.scan_iter(match=HISTORY_PATTERN, count=1000):
            parsed = parse_history_key(key.decode())
            if parsed is not None:
                found[history_days_member(*parsed)] = parsed[1]
        pairs = [v for member, day_ms in found.items() for v in (day_ms, member)]
        for start in range(0, len(pairs), 2 * BATCH):
            write_key(self.r, "ZADD", HISTORY_DAYS, *pairs[start : start + 2 * BATCH])
        write_key(self.r, "SET", HISTORY_DAYS_SCHEMA, 1)
        if found:
            log.info("retention: indexed %d history day(s) written before the day index", len(found))


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"
