"""An unknown face joins its cluster without the model's lock: optimistic, checked by Redis's WATCH.

Under one lock per model, clustering was serialised: a second worker (or replica) waited for the first and
added nothing but lock traffic. Most faces only *join*: a read of their nearest centroids (every cluster
shard's, in one pipeline) and one transaction in the chosen cluster's shard. That transaction WATCHes the
chosen cluster's hash, the model's lock in that shard, and that shard's erasure counter (which erasure and
retention bump in every shard after deleting faces' records and before taking them out of their
clusters); the face's record and the cluster's size and sum are read again after the WATCH, so if any of
them changes before it commits, nothing is written and the face is tried again. Everything it watches and
writes is under the shard's hash tag: one slot, also on Redis Cluster; the copy of the cluster id on the
face's own record is written after, only if it still exists. So two workers join faces to different
clusters at once, and a face whose cluster changed meanwhile looks again, as it would have under the lock.

What still takes the lock: operators' changes (merge, split, promote, erasure), which hold it across several
transactions (a join while the lock is held waits until it is free, then chooses; one that sees it taken
meanwhile chooses again: the lock key is watched), and merging clusters a join brought together (rare;
checked read-only first, then redone under the lock). Two faces of one new person joining at the same
instant may start two clusters; the merge check of the second finds the first and merges them, as an
operator's merge would. A cluster being merged into another shard's (`moving_to`, cloud_analyzer/
cluster_moves.py) is never chosen.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import redis

from facecodec.openset import OpenSetCalibration, unit
from service_common.redis_keys import (
    cluster_gone_key,
    cluster_key,
    cluster_shard,
    clusters_lock_key,
    face_key,
)

if TYPE_CHECKING:
    from cloud_analyzer.clusters import Clusters, _Member

TRIES = 8  # conflicts before a face is joined under the lock instead
LOCKED = object()  # join under the lock (held for longer than the lock wait, or too many conflicts)
_FIELDS = ("size", "sum", "first_seen_ms", "last_seen_ms", "moving_to")


def join(clusters: Clusters, member: _Member, model: str, calibration: OpenSetCalibration) -> str | None | object:
    """The cluster the face joined (made), None if it was erased meanwhile, LOCKED if it must be joined under
    the lock (held by someone, or too many conflicts)."""
    from cloud_analyzer.clusters import join_threshold, new_cluster_id

    r = clusters.r
    conflicts = 0
    while conflicts < TRIES:
        existing = clusters.of(member.face_id)
        if existing:  # joined already (a redelivered face)
            return existing
        target, made = None, False
        for cluster_id, fields, similarity in _scored(r, clusters._candidates(model, member.descriptor),
                                                      member.descriptor):
            if similarity >= join_threshold(calibration, int(fields[0]), clusters.far):
                target = cluster_id
                break
        if target is None:
            target, made = new_cluster_id(), True
        shard = cluster_shard(target)
        with r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(clusters_lock_key(model, shard), cluster_gone_key(shard), cluster_key(target))
                # Read after the WATCH (one round trip on one Redis): a change after these reads aborts the EXEC.
                reads = r.pipeline(transaction=False)
                reads.exists(clusters_lock_key(model, shard))
                reads.exists(face_key(member.face_id))
                reads.hmget(cluster_key(target), *_FIELDS)
                locked, exists, state = reads.execute()
                if locked:  # an operator's change: wait, then choose again
                    pipe.unwatch()
                    if not _unlocked(r, model, shard, clusters.lock_wait_s):
                        return LOCKED
                    continue
                if not exists:  # erased meanwhile: never added
                    pipe.unwatch()
                    return None
                if not made and not _still_near(state, member.descriptor, calibration, clusters.far):
                    pipe.unwatch()  # merged away, emptied or moved since it was chosen: choose again
                    conflicts += 1
                    continue
                pipe.multi()
                clusters._write_member(pipe, target, model, member, *state[:4])
                pipe.execute()
                clusters.mark_faces({member.face_id: target})
                return target
            except redis.WatchError:  # the cluster, the face or the lock changed: choose again
                clusters.stats["join_conflicts"] += 1
                conflicts += 1
    return LOCKED


def _still_near(state: list, vector: np.ndarray, calibration: OpenSetCalibration, far: float) -> bool:
    """Does the chosen cluster, as read after the WATCH, still take the face? (not merged away, not being
    moved to another shard, its centroid still within the join threshold)"""
    from cloud_analyzer.clusters import join_threshold

    size, total, moving = state[0], state[1], state[4]
    if moving or not size or not total or int(size) <= 0:
        return False
    return float(unit(np.frombuffer(total, "<f8").astype(np.float32)) @ vector) >= join_threshold(
        calibration, int(size), far)


def _unlocked(r: redis.Redis, model: str, shard: int, wait_s: float) -> bool:
    """Wait (polling every 2 ms, as the lock itself does) until nobody holds the model's lock in the shard;
    False after wait_s."""
    deadline = time.monotonic() + wait_s
    while r.exists(clusters_lock_key(model, shard)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _scored(r: redis.Redis, ids: list[str], vector: np.ndarray) -> list[tuple[str, list, float]]:
    """(cluster_id, [size, sum, first_seen_ms, last_seen_ms, moving_to], exact cosine of its centroid) of the
    candidates, nearest first (the cosine from the float sum, as `Clusters._scored`); none being moved."""
    if not ids:
        return []
    pipe = r.pipeline(transaction=False)
    for cluster_id in ids:
        pipe.hmget(cluster_key(cluster_id), *_FIELDS)
    found = [(c, f, float(unit(np.frombuffer(f[1], "<f8").astype(np.float32)) @ vector))
             for c, f in zip(ids, pipe.execute()) if f[0] and f[1] and int(f[0]) > 0 and not f[4]]
    return sorted(found, key=lambda cfs: -cfs[2])
