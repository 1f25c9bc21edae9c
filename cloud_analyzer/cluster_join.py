"""An unknown face joins its cluster without the model's lock: optimistic, checked by Redis's WATCH.

Under one lock per model, clustering was serialised: a second worker (or replica) waited for the first and
added nothing but lock traffic. Most faces only *join*: a read of their nearest centroids and one
transaction. That transaction WATCHes what the choice was made from (the candidate clusters' hashes, the
model's lock key, and CLUSTER_GONE, which erasure and retention bump after deleting faces' records and
before taking them out of their clusters); if any of them changed before it commits, nothing is written and the face is
tried again. Everything it watches and writes is under the `{clusters}` hash tag: one slot, also on Redis
Cluster; the copy of the cluster id on the face's own record is written after, only if it still exists.
So two workers join faces to different clusters at once, and a face whose
candidates changed meanwhile looks again, as it would have under the lock.

What still takes the lock: operators' changes (merge, split, promote, erasure), which hold it across several
transactions (a join while the lock is held waits until it is free, then chooses; one that sees it taken
meanwhile chooses again: the lock key is watched), and
merging clusters a join brought together (rare; checked read-only first, then redone under the lock). Two
faces of one new person joining at the same instant may start two clusters; the merge check of the second
finds the first and merges them, as an operator's merge would.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import redis

from facecodec.openset import OpenSetCalibration, unit
from service_common.redis_keys import (
    CLUSTER_GONE,
    CLUSTER_OF,
    cluster_key,
    clusters_lock_key,
    face_key,
    unknown_vset_key,
)

if TYPE_CHECKING:
    from cloud_analyzer.clusters import Clusters, _Member

TRIES = 8  # conflicts before a face is joined under the lock instead
LOCKED = object()  # join under the lock (held for longer than the lock wait, or too many conflicts)


def join(clusters: Clusters, member: _Member, model: str, calibration: OpenSetCalibration) -> str | None | object:
    """The cluster the face joined (made), None if it was erased meanwhile, LOCKED if it must be joined under
    the lock (held by someone, or too many conflicts)."""
    from cloud_analyzer.clusters import CANDIDATES, join_threshold, new_cluster_id

    r = clusters.r
    conflicts = 0
    with r.pipeline(transaction=True) as pipe:
        while conflicts < TRIES:
            try:
                pipe.watch(clusters_lock_key(model), CLUSTER_GONE)
                exists, locked, existing = _state(r, model, member.face_id)
                if locked:  # a merge or an operator's change: wait for it, then choose (not the lock's queue)
                    pipe.unwatch()
                    if not _unlocked(r, model, clusters.lock_wait_s):
                        return LOCKED
                    continue
                if existing:  # joined already (a redelivered face)
                    pipe.unwatch()
                    return existing.decode()
                if not exists:  # erased meanwhile: never added
                    pipe.unwatch()
                    return None
                raw = r.execute_command("VSIM", unknown_vset_key(model), "FP32",
                                        member.descriptor.astype("<f4").tobytes(), "COUNT", CANDIDATES)
                ids = [c.decode() for c in raw or []]
                if ids:
                    pipe.watch(*(cluster_key(c) for c in ids))
                target, state = None, (None, None, None, None)
                for cluster_id, fields, similarity in _scored(r, ids, member.descriptor):
                    if similarity >= join_threshold(calibration, int(fields[0]), clusters.far):
                        target, state = cluster_id, fields
                        break
                target = target or new_cluster_id()
                pipe.multi()
                clusters._write_member(pipe, target, model, member, *state)
                pipe.execute()
                clusters.mark_faces({member.face_id: target})
                return target
            except redis.WatchError:  # a candidate, the face or the lock changed: choose again
                clusters.stats["join_conflicts"] += 1
                conflicts += 1
    return LOCKED


def _unlocked(r: redis.Redis, model: str, wait_s: float) -> bool:
    """Wait (polling every 2 ms, as the lock itself does) until nobody holds the model's lock; False after wait_s."""
    deadline = time.monotonic() + wait_s
    while r.exists(clusters_lock_key(model)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _state(r: redis.Redis, model: str, face_id: str) -> tuple[bool, bool, bytes | None]:
    pipe = r.pipeline(transaction=False)
    pipe.exists(face_key(face_id))
    pipe.exists(clusters_lock_key(model))
    pipe.hget(CLUSTER_OF, face_id)
    exists, locked, existing = pipe.execute()
    return bool(exists), bool(locked), existing


def _scored(r: redis.Redis, ids: list[str], vector: np.ndarray) -> list[tuple[str, list, float]]:
    """(cluster_id, [size, sum, first_seen_ms, last_seen_ms], exact cosine of its centroid) of the candidates,
    nearest first (the cosine from the float sum, as `Clusters._scored`)."""
    if not ids:
        return []
    pipe = r.pipeline(transaction=False)
    for cluster_id in ids:
        pipe.hmget(cluster_key(cluster_id), "size", "sum", "first_seen_ms", "last_seen_ms")
    found = [(c, f, float(unit(np.frombuffer(f[1], "<f8").astype(np.float32)) @ vector))
             for c, f in zip(ids, pipe.execute()) if f[0] and f[1] and int(f[0]) > 0]
    return sorted(found, key=lambda cfs: -cfs[2])
