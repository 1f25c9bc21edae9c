"""Merging two clusters of different cluster shards: a move in steps that are safe to repeat.

With FACECODEC_CLUSTER_SHARDS > 1 a cluster's keys share its shard's hash tag, so a merge of clusters in two
shards cannot be one transaction (on Redis Cluster the shards are different slots, often different nodes).
The caller holds both shards' locks of the model (taken in shard order, so two merges never deadlock); the
source `gone` moves into the target `keep` in three steps, each one transaction in one slot:

0. On the source's slot: `moving_to` on the source's hash and the journal entry `gone -> keep` in the
   source shard's `cluster_moves_key`. From here on no join picks the source (cluster_join skips a
   cluster with `moving_to`), so nothing joins it that the move would not carry.
1. On the target's slot, WATCHing the target shard's erasure counter: the source's faces (those whose
   record still exists), members, scores and cameras added to the target, its size, sum, times, indexes
   and centroid updated, and `gone -> keep` in the target shard's `cluster_moved_key` journal. Skipped
   when that journal already has it: a repeated step 1 never counts a face twice.
2. On the source's slot: the source deleted (hash, parts, centroid, index entries, its faces' CLUSTER_OF
   entries) with its journal entry. Then the target's journal entry is removed.

A restart (or any replica, at its start) finishes a move found half done (`finish_moves`): it reads the
journals, takes the two locks and redoes the steps from the first not done. An erased face never comes
back: erasure deletes the record, then bumps every shard's erasure counter, then takes the face out of
every shard that has it, looking again until none does (clusters.py). Step 1 watches the target shard's
counter and copies only faces whose record exists after that watch, so a face erased before the copy is
left behind (its descriptor subtracted from the moved sum) and one erased after is found in the target.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import redis

from service_common.redis_keys import (
    CLUSTER_SHARDS,
    cluster_gone_key,
    cluster_key,
    cluster_moved_key,
    cluster_moves_key,
    cluster_of_key,
    cluster_part_key,
    cluster_shard,
    cluster_sizes_key,
    clusters_key,
)

if TYPE_CHECKING:
    from cloud_analyzer.clusters import Clusters

log = logging.getLogger(__name__)


def move(clusters: Clusters, keep: str, gone: str, model: str, stop_after: int = 2) -> None:
    """`gone` (another shard's) into `keep`; both shards' locks held by the caller. `stop_after`: the last
    step done (tests stop after step 0 or 1 to play a replica that died there)."""
    source = cluster_shard(gone)
    pipe = clusters.r.pipeline(transaction=True)
    pipe.hset(cluster_key(gone), "moving_to", keep)
    pipe.hset(cluster_moves_key(source), gone, keep)
    pipe.execute()
    finish(clusters, gone, keep, model, stop_after)


def finish(clusters: Clusters, gone: str, keep: str, model: str, stop_after: int = 2) -> None:
    """Steps 1 and 2 of the move `gone -> keep`, each unless done already (both shards' locks held)."""
    r = clusters.r
    source, target = cluster_shard(gone), cluster_shard(keep)
    if stop_after < 1:
        return
    if not r.hexists(cluster_moved_key(target), gone):
        # The target went meanwhile (erased, promoted), or is itself being moved (what it gained now could be
        # left behind by its own move): the source stays a cluster of its own, nothing moved.
        if not r.exists(cluster_key(keep)) or r.hexists(cluster_key(keep), "moving_to"):
            pipe = r.pipeline(transaction=True)
            pipe.hdel(cluster_key(gone), "moving_to")
            pipe.hdel(cluster_moves_key(source), gone)
            pipe.execute()
            return
        moved = _copy(clusters, gone, keep, model)
        clusters.mark_faces({face_id: keep for face_id in moved})
    if stop_after < 2:
        return
    faces = [f.decode() for f in r.hkeys(cluster_part_key(gone, "faces"))]
    from cloud_analyzer.clusters import queue_delete  # clusters.py imports this module

    pipe = r.pipeline(transaction=True)
    queue_delete(pipe, gone, model, faces)
    pipe.hdel(cluster_moves_key(source), gone)
    pipe.execute()
    r.hdel(cluster_moved_key(target), gone)
    log.info("clusters: %s (shard %d) moved into %s (shard %d)", gone, source, keep, target)


def _copy(clusters: Clusters, gone: str, keep: str, model: str) -> list[str]:
    """Step 1: the source's faces whose record exists into the target, with the journal mark, in one
    transaction on the target's slot. Returns the faces copied."""
    r, target = clusters.r, cluster_shard(keep)
    with r.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(cluster_gone_key(target))  # erasure bumps it after deleting records, before taking out
                a, b = r.hgetall(cluster_key(keep)), r.hgetall(cluster_key(gone))
                faces = r.hgetall(cluster_part_key(gone, "faces"))
                members = dict(r.zrange(cluster_part_key(gone, "members"), 0, -1, withscores=True))
                scores = dict(r.zrange(cluster_part_key(gone, "score"), 0, -1, withscores=True))
                ids = list(faces)
                erased = [faces.pop(f) for f, kept in zip(ids, clusters._exist(f.decode() for f in ids)) if not kept]
                total = np.frombuffer(a[b"sum"], "<f8").copy()
                if b.get(b"sum"):
                    total += np.frombuffer(b[b"sum"], "<f8")
                for entry in erased:  # left behind: what the source's sum holds of them is not moved
                    total -= clusters._decode(entry)
                cameras: dict[str, int] = {}
                for entry in faces.values():
                    camera = entry.split(b"|", 1)[0].decode()
                    cameras[camera] = cameras.get(camera, 0) + 1
                size = int(a[b"size"]) + len(faces)
                times = [int(members[f]) for f in faces if f in members]
                first = min([int(a[b"first_seen_ms"]), *times])
                last = max([int(a[b"last_seen_ms"]), *times])
                pipe.multi()
                pipe.hset(cluster_key(keep), mapping={"size": size, "sum": total.astype("<f8").tobytes(),
                                                      "first_seen_ms": first, "last_seen_ms": last})
                if faces:
                    pipe.hset(cluster_part_key(keep, "faces"), mapping=faces)
                    pipe.zadd(cluster_part_key(keep, "members"), {f: members[f] for f in faces if f in members})
                    pipe.zadd(cluster_part_key(keep, "score"), {f: scores[f] for f in faces if f in scores})
                    pipe.hset(cluster_of_key(target), mapping={f: keep for f in faces})
                for camera, n in cameras.items():
                    pipe.hincrby(cluster_part_key(keep, "cameras"), camera, n)
                pipe.zadd(clusters_key(target), {keep: last})
                pipe.zadd(cluster_sizes_key(target), {keep: size})
                clusters._write_centroid(pipe, keep, model, total)
                pipe.hset(cluster_moved_key(target), gone, keep)
                pipe.execute()
                return [f.decode() for f in faces]
            except redis.WatchError:  # a face was erased meanwhile (one of these?): look again
                continue


def finish_moves(clusters: Clusters) -> int:
    """Finish every cross-shard move a replica left half done (it died between two steps); returns how
    many. Safe at any time: each move is finished under its two shards' locks."""
    r, done = clusters.r, 0
    if CLUSTER_SHARDS == 1:
        return 0
    pipe = r.pipeline(transaction=False)
    for shard in range(CLUSTER_SHARDS):
        pipe.hgetall(cluster_moves_key(shard))
        pipe.hgetall(cluster_moved_key(shard))
    replies = pipe.execute()
    for shard in range(CLUSTER_SHARDS):
        for raw_gone, raw_keep in replies[2 * shard].items():
            gone, keep = raw_gone.decode(), raw_keep.decode()
            model = r.hget(cluster_key(gone), "descriptor_model") or r.hget(cluster_key(keep), "descriptor_model")
            if model is None:  # both gone: nothing left to move
                r.hdel(cluster_moves_key(shard), gone)
                continue
            with clusters._lock(model.decode(), {shard, cluster_shard(keep)}):
                if r.hget(cluster_moves_key(shard), gone) == raw_keep:  # not finished by another replica
                    finish(clusters, gone, keep, model.decode())
                    done += 1
    for shard in range(CLUSTER_SHARDS):  # step 2 done, the target's mark not yet removed
        for raw_gone in replies[2 * shard + 1]:
            gone = raw_gone.decode()
            if not r.hexists(cluster_moves_key(cluster_shard(gone)), gone):
                r.hdel(cluster_moved_key(shard), gone)
    return done
