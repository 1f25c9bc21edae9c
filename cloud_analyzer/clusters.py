"""Unknown people: faces that match no identity, grouped online into persistent anonymous clusters.

A face the workers decide `unknown` joins the nearest cluster of its descriptor model whose centroid
(normalised mean of its members' decoded base layers) it reaches at the join threshold, or starts a new
cluster `unknown-<12 hex>`. When a new member brings its cluster's centroid within the merge threshold
of another cluster's, the two become one (the smaller goes into the larger). Operators merge, split
and promote clusters over REST (`routers/clusters.py`); erasure and retention remove faces from them.

Thresholds come from the codec's open-set calibration (impostor tails measured on *training*
identities only): joining a cluster of n faces is a probe of 1 frame against a template of n images,
`tail(n, 1).threshold_at(JOIN_FAR)`; merging clusters of n >= m faces is `tail(n, m)` at the same
pair FAR (n, m counted up to 3 as the calibration does). JOIN_FAR was picked on LFW *training*
identities (`bench/clustering.py --tune`), never on the evaluation identities it is measured on: at
3e-4 and 1e-4 clusters chain strangers together; 3e-5 and 1e-5 tied on the harmonic mean of purity and
completeness (0.974), and 1e-5 was purer (0.998 on held-out identities). Under the calibration of the
held-out splits (per quality band) the training identities prefer 3e-6 (0.9739 against 0.9715), but it
splits the people of `samples/` into several clusters, so 1e-5 stays (held-out purity now 0.973: README).
A wrong merge costs more than a split (an operator merges in one call; a promoted impure cluster names strangers).

Keys (named in service_common/redis_keys.py, described in docs/redis-keys.md), per cluster shard (C =
FACECODEC_CLUSTER_SHARDS; a cluster lives in shard crc32(cluster_id) mod C for its whole life, a new
cluster's random id spreading them evenly): per descriptor model a vector set of centroids
(`unknown_vset_key`, Q8; decisions are re-scored exactly from the sums) and a lock (`clusters_lock_key`);
per cluster a hash (`cluster_key`: size, sum of unit descriptors, times) and its parts
(`cluster_part_key`): members by capture time, `faces` (face_id -> `camera_id|base layer`: what the sum
holds, so a removal subtracts it exactly even after the face's own hash is erased), `score` (cosine when it
joined: representatives) and `cameras`; the indexes `clusters_key` (by last seen), `cluster_sizes_key` and
`cluster_of_key` (face_id -> cluster_id). Searches ask every shard's vector set in one pipeline, listings
merge the shards' indexes in one order, a lookup by face asks every shard's CLUSTER_OF.

Concurrency: a face joins its cluster optimistically, in one transaction in that cluster's shard that
WATCHes what the choice depends on (cloud_analyzer/cluster_join.py); every other change to the clusters of
one model (merges, operators' calls, erasure) is made under that model's lock in each shard it touches
(taken in shard order), which such a join also watches, so sums and sizes stay consistent when several
workers and replicas assign at once. A face erased while it is being assigned is never added (erasure
deletes its record, then bumps every shard's erasure counter, which the join WATCHes, before taking it out
of every shard that has it). Every key of a shard shares its hash tag (`{clusters}` with one shard), so
each transaction is one slot on Redis Cluster too; a merge of clusters of two shards moves the source in
steps that are safe to repeat and against an erasure in between (cloud_analyzer/cluster_moves.py); the
cluster id copied onto a face's record is written after, only if the record exists.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from redis.exceptions import LockError

from cloud_analyzer import cluster_join, cluster_moves
from cloud_analyzer.cluster_reads import CANDIDATES, SHARDS, Cluster, ClusterReads
from cloud_analyzer.identities import TemplateInfo
from facecodec.openset import OpenSetCalibration, identity_template, unit
from service_common.redis_keys import (
    CLUSTER_GONE_SHARDS,
    CLUSTER_OF_SHARDS,
    CLUSTER_PARTS,
    CLUSTER_SHARDS,
    cluster_gone_key,
    cluster_key,
    cluster_of_key,
    cluster_part_key,
    cluster_shard,
    cluster_sizes_key,
    clusters_key,
    clusters_lock_key,
    face_key,
    identity_sightings_key,
    unknown_vset_key,
)
from service_common.redis_oom import atomic_writes

log = logging.getLogger(__name__)

JOIN_FAR = 1e-5  # pair false-accept rate of joining / merging; chosen on training identities (module doc)
MAX_TEMPLATES = 32  # templates a promoted cluster gives its identity
PROMOTE_POOL = 256  # best-scored members decoded to choose those templates from
CLUSTER_ID = r"^unknown-[0-9a-f]{12}$"

# Field updates of faces that may have been erased meanwhile: never bring a hash back.
# KEYS[1] face hash; ARGV field/value pairs.
_SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  return 1
end
return 0
"""


class ClusterBusy(RuntimeError):
    """Another replica held the model's lock for too long."""


class ClusterError(ValueError):
    """A request that cannot be done (unknown cluster, face not a member, ...)."""


class ClusterNotFound(ClusterError):
    """No such cluster."""


class ClusterConflict(ClusterError):
    """The clusters as they are now do not allow it (merge with itself, face not a member, ...)."""


class IdentityNotFound(ClusterError):
    """The identity a cluster was to be merged into does not exist."""


def new_cluster_id(shard: int | None = None) -> str:
    """A random id: its crc32 spreads new clusters evenly over the cluster shards. `shard`: one that lives
    in that shard (a split stays in its cluster's shard, so it is one slot)."""
    while True:
        cluster_id = f"unknown-{uuid.uuid4().hex[:12]}"
        if shard is None or cluster_shard(cluster_id) == shard:
            return cluster_id


def join_threshold(calibration: OpenSetCalibration, size: int, far: float = JOIN_FAR) -> float:
    return calibration.tail(max(size, 1), 1).threshold_at(far)


def merge_threshold(calibration: OpenSetCalibration, a: int, b: int, far: float = JOIN_FAR) -> float:
    return calibration.tail(max(a, b, 1), max(min(a, b), 1)).threshold_at(far)


@dataclass
class _Member:
    face_id: str
    captured_at_ms: int
    camera_id: str
    base_layer: bytes
    descriptor: np.ndarray  # unit


class Clusters(ClusterReads):
    def __init__(self, client: redis.Redis, far: float = JOIN_FAR, lock_ttl_s: float = 30.0,
                 lock_wait_s: float = 10.0) -> None:
        self.r, self.far = client, far
        self.lock_ttl_s, self.lock_wait_s = lock_ttl_s, lock_wait_s
        self._set_if_exists = self.r.register_script(_SET_IF_EXISTS)
        # How assignments went in this process (bench/analyzer_throughput.py reports them): joined without
        # the lock, under it, merged under it, and optimistic tries that met a concurrent change.
        self.stats: Counter[str] = Counter()

    # --- the worker's call -------------------------------------------------------------------------
    def assign(self, face: dict[str, Any], descriptor: np.ndarray, model: str,
               calibration: OpenSetCalibration) -> str | None:
        """Put an unknown face into its cluster (the nearest above the join threshold, or a new one);
        merge clusters it brings together. Returns the cluster id, None if the face was erased meanwhile.
        Idempotent: a face already in a cluster stays where it is."""
        member = _Member(face["face_id"], int(face["captured_at_ms"]), face["camera_id"], face["base_layer"],
                         unit(np.asarray(descriptor, np.float32)))
        joined = cluster_join.join(self, member, model, calibration)
        if joined is cluster_join.LOCKED:
            self.stats["joined_locked"] += 1
            return self._assign_locked(member, model, calibration)
        self.stats["joined_unlocked"] += 1
        if joined is None:
            return None
        if not self._merge_due(joined, model, calibration):  # nearly always: nothing to merge, no lock taken
            return joined
        self.stats["merged_locked"] += 1
        with self._lock(model):  # every shard's: a merge may reach a cluster of any
            current = self.of(member.face_id)  # merged elsewhere meanwhile, or erased
            return self._merge_neighbours(current, model, calibration) if current else None

    def _assign_locked(self, member: _Member, model: str, calibration: OpenSetCalibration) -> str | None:
        """`assign` under the model's lock: while an operator's change holds it, or after many conflicts."""
        with self._lock(model):
            existing = self.of(member.face_id)
            if existing:
                return existing
            target = None
            for cluster_id, size, similarity in self._nearest(model, member.descriptor):
                if similarity >= join_threshold(calibration, size, self.far):
                    target = cluster_id
                    break
            target = target or new_cluster_id()
            if not self._add(target, model, member):
                return None
            return self._merge_neighbours(target, model, calibration)

    def _merge_due(self, cluster_id: str, model: str, calibration: OpenSetCalibration) -> bool:
        """Is another cluster's centroid within the merge threshold of this one's? (read only)"""
        size, total = self.r.hmget(cluster_key(cluster_id), "size", "sum")
        if not size or not total:
            return True  # changed meanwhile: let the locked merge look
        centroid = unit(np.frombuffer(total, "<f8").astype(np.float32))
        return any(s >= merge_threshold(calibration, int(size), n, self.far)
                   for _, n, s in self._nearest(model, centroid, exclude=cluster_id))

    # --- operators' calls --------------------------------------------------------------------------
    def merge(self, cluster_id: str, other_id: str) -> Cluster:
        """`other_id`'s faces join `cluster_id`, which stays; `other_id` is gone afterwards."""
        if cluster_id == other_id:
            raise ClusterConflict("a cluster cannot be merged with itself")
        model = self._model(cluster_id)
        if self._model(other_id) != model:
            raise ClusterConflict("clusters of different descriptor models cannot be merged")
        cluster_moves.finish_moves(self)  # a move a dead replica left half done is not merged again
        with self._lock(model, {cluster_shard(cluster_id), cluster_shard(other_id)}):
            self._require(cluster_id)
            self._require(other_id)
            self._merge_into(cluster_id, other_id, model)
        return self.get(cluster_id)  # type: ignore[return-value]

    def split(self, cluster_id: str, face_id: str) -> Cluster:
        """The face leaves into a new cluster of its own; returns that new cluster."""
        model = self._model(cluster_id)
        with self._lock(model, {cluster_shard(cluster_id)}):
            self._require(cluster_id)
            if self.r.zscore(cluster_part_key(cluster_id, "members"), face_id) is None:
                raise ClusterConflict(f"face {face_id} is not in cluster {cluster_id}")
            if int(self.r.hget(cluster_key(cluster_id), "size") or 0) <= 1:
                raise ClusterConflict(f"face {face_id} is alone in cluster {cluster_id} already")
            members = self._remove(cluster_id, model, [face_id])
            new_id = new_cluster_id(cluster_shard(cluster_id))
            self._add(new_id, model, members[0])
        return self.get(new_id)  # type: ignore[return-value]

    def promote(self, cluster_id: str, identity_id: str, name: str, store) -> int:
        """Make the cluster a named identity (`store.add_identity`, its best faces as templates); every
        member's sighting is relabelled to it; the cluster is deleted. Returns the templates stored."""
        return self._into_identity(cluster_id, identity_id, store, name, MAX_TEMPLATES)

    def merge_into_identity(self, cluster_id: str, identity_id: str, store) -> int:
        """The cluster joins an enrolled identity: its best faces fill the identity's free template places
        (up to MAX_TEMPLATES in all; the identity's own templates stay), every member's sighting is
        relabelled to it, and the cluster is deleted. Returns the templates added."""
        found = store.templates(identity_id)
        if found is None:
            raise IdentityNotFound(f"identity {identity_id} not found")
        model, templates = found
        if model != self._model(cluster_id):
            raise ClusterConflict(f"identity {identity_id} was enrolled with recogniser {model}, cluster "
                               f"{cluster_id} with {self._model(cluster_id)}: they cannot be merged")
        return self._into_identity(cluster_id, identity_id, store, None, MAX_TEMPLATES - len(templates))

    def _into_identity(self, cluster_id: str, identity_id: str, store, name: str | None, room: int) -> int:
        """Promote (`name`: a new identity) or merge into an existing one (`name` None), `room` templates."""
        model = self._model(cluster_id)
        with self._lock(model, {cluster_shard(cluster_id)}):
            meta = self._require(cluster_id)
            centroid = unit(np.frombuffer(meta[b"sum"], "<f8").astype(np.float32))
            pool = [f.decode() for f in self.r.zrevrange(cluster_part_key(cluster_id, "score"), 0, PROMOTE_POOL - 1)]
            blobs = self.r.hmget(cluster_part_key(cluster_id, "faces"), pool) if pool else []
            scored = sorted(((float(d @ centroid), face_id, d)
                             for face_id, d in ((f, self._decode(b)) for f, b in zip(pool, blobs) if b)),
                            key=lambda s: -s[0])
            if not scored:
                raise ClusterConflict(f"cluster {cluster_id} has no decodable face")
            best = scored[: max(room, 0)]
            infos = [TemplateInfo.new("cluster", face_id=face_id) for _, face_id, _ in best]
            if name is not None:
                store.add_identity(identity_id, name, np.stack([d for _, _, d in best]), model, infos)
            elif best and not store.add_templates(identity_id, np.stack([d for _, _, d in best]), model,
                                                  MAX_TEMPLATES, infos):
                raise IdentityNotFound(f"identity {identity_id} not found")
            found = store.templates(identity_id)
            if found is None:
                raise IdentityNotFound(f"identity {identity_id} not found")
            name = (store.identity(identity_id) or {}).get("name", name or "")
            template = identity_template(np.stack([v for _, v in found[1]]))
            faces = self.r.hgetall(cluster_part_key(cluster_id, "faces"))
            members = {f.decode(): int(ts) for f, ts in self.r.zrange(cluster_part_key(cluster_id, "members"), 0, -1,
                                                                       withscores=True)}
            # Each face in its own slot: no transaction (a face erased meanwhile is caught below). The script
            # called on its own, not queued on a pipeline: Redis Cluster's pipelines do not load scripts.
            for raw_id, blob in faces.items():
                face_id = raw_id.decode()
                similarity = float(self._decode(blob) @ template)
                self._set_if_exists(keys=[face_key(face_id)], args=[
                    "status", "recognised", "identity_id", identity_id, "identity_name", name,
                    "similarity", f"{similarity:.6f}", "cluster_id", ""])
            if faces:
                named = {f: members.get(f, 0) for f in map(bytes.decode, faces)}
                self.r.zadd(identity_sightings_key(identity_id), named)
            # Faces erased meanwhile left a sighting index entry above: take it out again.
            gone = [f for f, exists in zip(members, self._exist(members)) if not exists]
            if gone:
                self.r.zrem(identity_sightings_key(identity_id), *gone)
            self._delete(cluster_id, model, list(members))
        return len(best)

    def remove_faces(self, face_ids: Iterable[str]) -> int:
        """Faces erased or expired leave their clusters (a cluster left empty disappears). Returns how
        many were in one. Safe to call for faces in no cluster."""
        ids = list(dict.fromkeys(face_ids))
        if not ids:
            return 0
        removed = 0
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            # First, in every shard: a join that read one of them before commits nothing (it watches its shard's
            # counter), and finds its record gone when it looks again; a cross-shard merge copies none of them
            # (cluster_moves.py). Allow-oom: an erasure must work when Redis is full.
            atomic_writes(self.r, [("INCR", key) for key in CLUSTER_GONE_SHARDS])
            # Then every shard that has one, until none does: a merge may have carried a face from a shard
            # read later into one read earlier (no face joins any cluster anew after the counters moved).
            for _ in range(CLUSTER_SHARDS + 2):
                pipe = self.r.pipeline(transaction=False)
                for key in CLUSTER_OF_SHARDS:
                    pipe.hmget(key, chunk)
                found = [shard for shard, owners in zip(SHARDS, pipe.execute()) if any(owners)]
                if not found:
                    break
                for shard in found:
                    removed += self._remove_in_shard(shard, chunk)
        return removed

    def _remove_in_shard(self, shard: int, chunk: list[str]) -> int:
        """The faces of `chunk` out of their clusters in one cluster shard, under its locks."""
        removed = 0
        owners = {c.decode() for c in self.r.hmget(cluster_of_key(shard), chunk) if c}
        models = {m.decode() for m in (self.r.hget(cluster_key(c), "descriptor_model") for c in owners) if m}
        for model in models:
            with self._lock(model, {shard}):
                by_cluster: dict[str, list[str]] = {}
                for face_id, owner in zip(chunk, self.r.hmget(cluster_of_key(shard), chunk)):
                    if owner:
                        by_cluster.setdefault(owner.decode(), []).append(face_id)
                for cluster_id, members in by_cluster.items():
                    if (self.r.hget(cluster_key(cluster_id), "descriptor_model") or b"").decode() != model:
                        continue
                    removed += len(self._remove(cluster_id, model, members, keep_face=False))
        # Faces whose cluster vanished (a stale entry) must not keep pointing at it.
        self.r.hdel(cluster_of_key(shard), *chunk)
        return removed

    # --- internals ---------------------------------------------------------------------------------
    @contextmanager
    def _lock(self, model: str, shards: Iterable[int] | None = None) -> Iterator[None]:
        """The model's lock in each of `shards` (None: every shard), taken in shard order: two replicas that
        need two of them (a cross-shard merge) never wait for each other in a circle."""
        with ExitStack() as stack:
            for shard in sorted(set(SHARDS if shards is None else shards)):
                stack.enter_context(self._shard_lock(model, shard))
            yield

    @contextmanager
    def _shard_lock(self, model: str, shard: int) -> Iterator[None]:
        # The expiry frees the lock of a replica that died holding it; a random token per holder means a
        # holder whose lock expired never deletes the next holder's. Polled every 2 ms: changes are short.
        lock = self.r.lock(clusters_lock_key(model, shard), timeout=self.lock_ttl_s, sleep=0.002,
                           blocking_timeout=self.lock_wait_s)
        if not lock.acquire():
            raise ClusterBusy(f"clusters of {model} locked by another replica for {self.lock_wait_s:.0f}s")
        try:
            yield
        finally:
            try:
                lock.release()
            except LockError:  # expired meanwhile (and maybe taken by another replica): nothing of ours to free
                pass

    def _model(self, cluster_id: str) -> str:
        model = self.r.hget(cluster_key(cluster_id), "descriptor_model")
        if model is None:
            raise ClusterNotFound(f"cluster {cluster_id} not found")
        return model.decode()

    def _require(self, cluster_id: str) -> dict[bytes, bytes]:
        meta = self.r.hgetall(cluster_key(cluster_id))
        if not meta:
            raise ClusterNotFound(f"cluster {cluster_id} not found")
        return meta

    def mark_faces(self, cluster_of: dict[str, str]) -> None:
        """The copy of each face's cluster id on its record ("" when it left one), only where the record still
        exists: after the clusters' own transaction, each face in its own slot."""
        for face_id, cluster_id in cluster_of.items():  # one call each: Redis Cluster's pipelines load no scripts
            self._set_if_exists(keys=[face_key(face_id)], args=["cluster_id", cluster_id])

    def _exist(self, face_ids: Iterable[str]) -> list[bool]:
        pipe = self.r.pipeline(transaction=False)
        for face_id in face_ids:
            pipe.exists(face_key(face_id))
        return [bool(x) for x in pipe.execute()]

    def _write_centroid(self, pipe, cluster_id: str, model: str, total: np.ndarray) -> None:
        centroid = unit(total.astype(np.float32))
        pipe.execute_command("VADD", unknown_vset_key(model, cluster_shard(cluster_id)), "FP32",
                             centroid.astype("<f4").tobytes(), cluster_id, "Q8")

    def _add(self, cluster_id: str, model: str, member: _Member) -> bool:
        """Member into cluster (made if new); False if the face was erased meanwhile."""
        key = cluster_key(cluster_id)
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # Erasure bumps it (after deleting records) before taking faces out.
                    pipe.watch(cluster_gone_key(cluster_shard(cluster_id)))
                    if not self.r.exists(face_key(member.face_id)):
                        pipe.unwatch()
                        return False
                    size, total, first, last = pipe.hmget(key, "size", "sum", "first_seen_ms", "last_seen_ms")
                    pipe.multi()
                    self._write_member(pipe, cluster_id, model, member, size, total, first, last)
                    pipe.execute()
                    self.mark_faces({member.face_id: cluster_id})
                    return True
                except redis.WatchError:  # a face was erased meanwhile (this one?): look again
                    continue

    def _write_member(self, pipe, cluster_id: str, model: str, member: _Member, size: bytes | None,
                      total: bytes | None, first: bytes | None, last: bytes | None) -> None:
        """Queue the writes adding `member` to the cluster whose stored size, sum and times are given
        (None: a new cluster) on a transaction's pipeline."""
        total_v = (np.frombuffer(total, "<f8") if total else np.zeros(len(member.descriptor))) \
            + member.descriptor.astype(np.float64)
        size_n = int(size or 0) + 1
        first_ms = min(int(first), member.captured_at_ms) if first else member.captured_at_ms
        last_ms = max(int(last), member.captured_at_ms) if last else member.captured_at_ms
        fields = {"cluster_id": cluster_id, "descriptor_model": model, "size": size_n,
                  "sum": total_v.astype("<f8").tobytes(), "first_seen_ms": first_ms, "last_seen_ms": last_ms}
        if not size:
            fields["created_at_ms"] = int(time.time() * 1000)
        pipe.hset(cluster_key(cluster_id), mapping=fields)
        pipe.zadd(cluster_part_key(cluster_id, "members"), {member.face_id: member.captured_at_ms})
        entry = member.camera_id.encode() + b"|" + member.base_layer
        pipe.hset(cluster_part_key(cluster_id, "faces"), member.face_id, entry)
        pipe.zadd(cluster_part_key(cluster_id, "score"),
                  {member.face_id: float(member.descriptor @ unit(total_v.astype(np.float32)))})
        pipe.hincrby(cluster_part_key(cluster_id, "cameras"), member.camera_id, 1)
        shard = cluster_shard(cluster_id)
        pipe.zadd(clusters_key(shard), {cluster_id: last_ms})
        pipe.zadd(cluster_sizes_key(shard), {cluster_id: size_n})
        pipe.hset(cluster_of_key(shard), member.face_id, cluster_id)
        self._write_centroid(pipe, cluster_id, model, total_v)

    def _remove(self, cluster_id: str, model: str, face_ids: list[str], keep_face: bool = True) -> list[_Member]:
        """Faces out of a cluster (deleted if left empty); returns them. keep_face: their hashes stay
        (a split), else they are being erased."""
        key = cluster_key(cluster_id)
        blobs = self.r.hmget(cluster_part_key(cluster_id, "faces"), face_ids)
        times = self.r.zmscore(cluster_part_key(cluster_id, "members"), face_ids)
        members = []
        for face_id, blob, ts in zip(face_ids, blobs, times):
            if blob is None or ts is None:
                continue
            camera, _, base_layer = blob.partition(b"|")
            members.append(_Member(face_id, int(ts), camera.decode(), base_layer, self._decode(blob)))
        if not members:
            return []
        ids = [m.face_id for m in members]
        meta = self._require(cluster_id)
        size = int(meta[b"size"]) - len(members)
        if size <= 0:
            self._delete(cluster_id, model, ids)
            return members
        total = np.frombuffer(meta[b"sum"], "<f8") - np.sum([m.descriptor for m in members], 0, dtype=np.float64)
        pipe = self.r.pipeline(transaction=True)
        pipe.zrem(cluster_part_key(cluster_id, "members"), *ids)
        pipe.hdel(cluster_part_key(cluster_id, "faces"), *ids)
        pipe.zrem(cluster_part_key(cluster_id, "score"), *ids)
        shard = cluster_shard(cluster_id)
        pipe.hdel(cluster_of_key(shard), *ids)
        for m in members:
            pipe.hincrby(cluster_part_key(cluster_id, "cameras"), m.camera_id, -1)
        pipe.hset(key, mapping={"size": size, "sum": total.astype("<f8").tobytes()})
        pipe.zadd(cluster_sizes_key(shard), {cluster_id: size})
        self._write_centroid(pipe, cluster_id, model, total)
        pipe.execute()
        if keep_face:
            self.mark_faces({m.face_id: "" for m in members})
        (first,) = self.r.zrange(cluster_part_key(cluster_id, "members"), 0, 0, withscores=True)
        (last,) = self.r.zrange(cluster_part_key(cluster_id, "members"), -1, -1, withscores=True)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(key, mapping={"first_seen_ms": int(first[1]), "last_seen_ms": int(last[1])})
        pipe.zadd(clusters_key(shard), {cluster_id: int(last[1])})
        for camera, n in self.r.hgetall(cluster_part_key(cluster_id, "cameras")).items():
            if int(n) <= 0:
                pipe.hdel(cluster_part_key(cluster_id, "cameras"), camera)
        pipe.execute()
        return members

    def _delete(self, cluster_id: str, model: str, face_ids: list[str]) -> None:
        pipe = self.r.pipeline(transaction=True)
        queue_delete(pipe, cluster_id, model, face_ids)
        pipe.execute()

    def _merge_into(self, keep: str, gone: str, model: str) -> None:
        """`gone` into `keep`, both shards' locks held: one transaction in one shard, else a move in steps."""
        shard = cluster_shard(keep)
        a, b = self._require(keep), self._require(gone)
        if b"moving_to" in a or b"moving_to" in b:  # a move a dead replica left half done: finished first
            raise ClusterConflict(f"cluster {keep if b'moving_to' in a else gone} is being merged; try again")
        if cluster_shard(gone) != shard:
            return cluster_moves.move(self, keep, gone, model)
        total = np.frombuffer(a[b"sum"], "<f8") + np.frombuffer(b[b"sum"], "<f8")
        size = int(a[b"size"]) + int(b[b"size"])
        first = min(int(a[b"first_seen_ms"]), int(b[b"first_seen_ms"]))
        last = max(int(a[b"last_seen_ms"]), int(b[b"last_seen_ms"]))
        faces = self.r.hgetall(cluster_part_key(gone, "faces"))
        cameras = self.r.hgetall(cluster_part_key(gone, "cameras"))
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(cluster_key(keep), mapping={"size": size, "sum": total.astype("<f8").tobytes(),
                                              "first_seen_ms": first, "last_seen_ms": last})
        for part in ("members", "score"):
            into = cluster_part_key(keep, part)
            pipe.zunionstore(into, [into, cluster_part_key(gone, part)], aggregate="MAX")
        if faces:
            pipe.hset(cluster_part_key(keep, "faces"), mapping=faces)
            pipe.hset(cluster_of_key(shard), mapping={f: keep for f in faces})
        for camera, n in cameras.items():
            pipe.hincrby(cluster_part_key(keep, "cameras"), camera, int(n))
        pipe.zadd(clusters_key(shard), {keep: last})
        pipe.zadd(cluster_sizes_key(shard), {keep: size})
        self._write_centroid(pipe, keep, model, total)
        pipe.delete(cluster_key(gone), *(cluster_part_key(gone, p) for p in CLUSTER_PARTS))
        pipe.execute_command("VREM", unknown_vset_key(model, shard), gone)
        pipe.zrem(clusters_key(shard), gone)
        pipe.zrem(cluster_sizes_key(shard), gone)
        pipe.execute()
        self.mark_faces({face_id.decode(): keep for face_id in faces})

    def _merge_neighbours(self, cluster_id: str, model: str, calibration: OpenSetCalibration) -> str:
        """Merge every cluster whose centroid is within the merge threshold of this one's; returns the
        surviving id (the larger cluster of each pair keeps its id)."""
        for _ in range(CANDIDATES):
            meta = self.r.hmget(cluster_key(cluster_id), "size", "sum", "moving_to")
            if meta[2]:  # being moved (a move left half done): it merges nothing until that is finished
                return cluster_id
            size, centroid = int(meta[0]), unit(np.frombuffer(meta[1], "<f8").astype(np.float32))
            near = [(c, n, s) for c, n, s in self._nearest(model, centroid, exclude=cluster_id)
                    if s >= merge_threshold(calibration, size, n, self.far)]
            if not near:
                return cluster_id
            other, other_size, similarity = near[0]
            keep, gone = (cluster_id, other) if size >= other_size else (other, cluster_id)
            log.info("clusters: %s merged into %s (centroid cosine %.3f)", gone, keep, similarity)
            self._merge_into(keep, gone, model)
            cluster_id = keep
        return cluster_id


def queue_delete(pipe: Any, cluster_id: str, model: str, face_ids: list[str]) -> None:
    """Queue on `pipe` (a transaction in the cluster's slot) the removal of a cluster: its keys, centroid
    and index entries, and its faces' CLUSTER_OF entries."""
    shard = cluster_shard(cluster_id)
    pipe.delete(cluster_key(cluster_id), *(cluster_part_key(cluster_id, p) for p in CLUSTER_PARTS))
    pipe.execute_command("VREM", unknown_vset_key(model, shard), cluster_id)
    pipe.zrem(clusters_key(shard), cluster_id)
    pipe.zrem(cluster_sizes_key(shard), cluster_id)
    if face_ids:
        pipe.hdel(cluster_of_key(shard), *face_ids)
