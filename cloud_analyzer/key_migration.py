"""Once, at the analyzer's start: the keys of a standalone Redis written before the key names had hash tags
(service_common/redis_keys.py, KEY_SCHEMA absent) renamed to today's, so nothing stored is lost.

- Keys of one face, identity, cluster, erasure, track, API key or webhook: RENAME (values, expiries and a
  stream's consumer groups go with them).
- The face index, the sighting index and the identity index, the template owners and the name index: split
  by shard (ZADD/HSET/SADD into the new keys, then the old key deleted).
- The ingest stream: its undecided entries (not yet delivered, or delivered and not acknowledged)
  appended to their face shard's stream, then the old stream deleted (the acknowledged ones were history
  retention would have trimmed).
- Denial windows: renamed, and the pending index's members (their names) rewritten.
- A vector set of the gallery: renamed (one gallery shard) or its identities re-added to their shards from
  their templates (several). Likewise the unknown-face clusters: renamed (one cluster shard), or their
  indexes split by cluster shard and each centroid re-added to its shard's vector set from the cluster's
  sum (several).

Idempotent: a start that dies half way leaves old names that the next start moves (a split re-adds what
it added already; an ingest entry may be queued twice, and deciding a face twice writes the same result).
One replica migrates (a lock); the others wait until KEY_SCHEMA says it is done. A Redis Cluster holds no
old names (the layout came with cluster support): only KEY_SCHEMA is set.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

import numpy as np
import redis

from service_common import redis_keys as k
from service_common.key_layout import check_layout
from service_common.redis_client import is_cluster
from service_common.redis_slots import unchecked

log = logging.getLogger(__name__)
LOCK_MS = 600_000
WAIT_S = 600.0

_RULES: dict[str, Callable[[re.Match], str]] = {
    "face": lambda m: k.face_key(m[1]),
    "fusion": lambda m: k.fusion_descriptor_key(m[1]),
    "corrections": lambda m: k.corrections_key(m[1]),
    "identity_sightings": lambda m: k.identity_sightings_key(m[1]),
    "camera_sightings": lambda m: k.camera_sightings_key(m[1]),
    "track": lambda m: k.track_key(m[1]),
    "track_info": lambda m: k.track_info_key(m[1]),
    "track_erased": lambda m: k.track_erased_key(m[1]),
    "identity": lambda m: k.identity_key(m[1]) + (m[2] or ""),
    "cluster": lambda m: k.cluster_part_key(m[1], m[2]) if m[2] else k.cluster_key(m[1]),
    "vunknown": lambda m: k.unknown_vset_key(m[1]),
    "erasure": lambda m: k.erasure_edge_key(m[1], m[2]) if m[2] else k.erasure_key(m[1]),
    "key": lambda m: k.api_key_key(m[1]),
    "webhook": lambda m: k.webhook_key(m[1]),
    "enrol_counts": lambda m: k.enrol_counts_key(m[1], 0),  # one gallery shard; several: re-counted
    "gallery": lambda m: k.gallery_key(m[1], 0),
}
_PATTERNS = [(name, re.compile(pattern)) for name, pattern in k.LEGACY_PER_ID.items()]
# The old cluster indexes; with several cluster shards split by the shard of the cluster (the member, or
# for CLUSTER_OF the value) instead of renamed.
_CLUSTER_INDEXES = {k.LEGACY_CLUSTERS: k.clusters_key, k.LEGACY_CLUSTER_SIZES: k.cluster_sizes_key,
                    k.LEGACY_CLUSTER_OF: k.cluster_of_key}


def migrate_keys(client: redis.Redis) -> int:
    """Rename every key of the old layout; returns how many old keys were moved (0: nothing to do). Refuses
    (LayoutMismatch) a Redis whose data has other shard counts than this process would use."""
    client.set(k.KEY_LAYOUT, k.LAYOUT, nx=True)
    check_layout(client.get(k.KEY_LAYOUT), k.LAYOUT, "analyzer")
    if client.get(k.KEY_SCHEMA) == str(k.KEY_SCHEMA_VERSION).encode():
        return 0
    if is_cluster(client):
        client.set(k.KEY_SCHEMA, k.KEY_SCHEMA_VERSION)
        return 0
    token = uuid.uuid4().hex
    if not client.set(k.KEY_MIGRATION_LOCK, token, nx=True, px=LOCK_MS):
        return _wait(client)
    try:
        moved = _KeyMover(unchecked(client)).run()  # standalone only: RENAME across slots is fine there
        client.set(k.KEY_SCHEMA, k.KEY_SCHEMA_VERSION)
        return moved
    finally:
        if client.get(k.KEY_MIGRATION_LOCK) == token.encode():
            client.delete(k.KEY_MIGRATION_LOCK)


def _wait(client: redis.Redis) -> int:
    deadline = time.monotonic() + WAIT_S
    while client.get(k.KEY_SCHEMA) != str(k.KEY_SCHEMA_VERSION).encode():
        if time.monotonic() > deadline:
            raise TimeoutError("another analyzer has been renaming the old Redis keys for too long")
        time.sleep(0.2)
    return 0


class _KeyMover:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client
        self.moved = 0
        self.galleries: list[str] = []  # descriptor models whose gallery needs re-adding (several shards)
        self.centroids: list[str] = []  # descriptor models whose cluster centroids need re-adding (several shards)

    def run(self) -> int:
        for raw in self.r.scan_iter(match=k.LEGACY_PREFIX + "*", count=1000):
            self._move(raw.decode())
        if self.galleries:
            self._reindex_galleries()
        if self.centroids:
            self._reindex_centroids()
        return self.moved

    def _move(self, name: str) -> None:
        if name.startswith(k.LEGACY_PREFIX + "{"):
            return  # today's layout
        split = {k.LEGACY_FACES: lambda m: k.faces_key(k.face_shard(m)),
                 k.LEGACY_SIGHTINGS: lambda m: k.sightings_key(k.face_shard(m)),
                 k.LEGACY_IDENTITIES: k.identities_of}
        if name in split:
            return self._split_zset(name, split[name])
        if name == k.LEGACY_INGEST:
            return self._split_ingest()
        if name == k.LEGACY_TEMPLATE_OWNERS:
            owners = self.r.hgetall(name)
            for template_id, identity_id in owners.items():
                self.r.hset(k.template_owners_of(identity_id.decode()), template_id, identity_id)
            return self._done(name)
        if name == k.LEGACY_GALLERY_VERSION:
            version = int(self.r.get(name) or 0)
            for shard in range(k.GALLERY_SHARDS):
                self.r.set(k.gallery_version_key(shard), version)
            return self._done(name)
        if name == k.LEGACY_DENIALS_PENDING:
            return self._move_denials(name)
        if name in _CLUSTER_INDEXES and k.CLUSTER_SHARDS > 1:
            return self._split_clusters(name)
        if name in k.LEGACY_RENAMED:
            return self._rename(name, k.LEGACY_RENAMED[name])
        for rule, pattern in _PATTERNS:
            if (match := pattern.fullmatch(name)) is None:
                continue
            if rule == "cluster_lock":
                return self._done(name)  # a lock held by an analyzer of the old layout: gone with it
            if rule == "identity_name":
                for identity_id in self.r.smembers(name):
                    shard = k.gallery_shard(identity_id.decode())
                    self.r.sadd(k.identity_name_key_of_digest(match[1], shard), identity_id)
                return self._done(name)
            if rule in ("gallery", "enrol_counts") and k.GALLERY_SHARDS > 1:  # re-added below, by shard
                self.galleries += [match[1]] if rule == "gallery" else []
                return self._done(name)
            if rule == "vunknown" and k.CLUSTER_SHARDS > 1:  # re-added below, each centroid to its shard
                self.centroids.append(match[1])
                return self._done(name)
            return self._rename(name, _RULES[rule](match))
        # Anything else (events, history, cameras, locks, idempotency answers, rate logs) kept its name.

    def _rename(self, old: str, new: str) -> None:
        try:
            self.r.rename(old, new)
            self.moved += 1
        except redis.ResponseError as exc:  # gone meanwhile (expired): nothing to move
            if "no such key" not in str(exc).lower():
                raise

    def _done(self, old: str) -> None:
        self.r.delete(old)
        self.moved += 1

    def _split_zset(self, name: str, key_of: Callable[[str], str]) -> None:
        start = 0
        while rows := self.r.zrange(name, start, start + 9_999, withscores=True):
            pipe = self.r.pipeline(transaction=False)
            for member, score in rows:
                pipe.zadd(key_of(member.decode()), {member: score})
            pipe.execute()
            start += len(rows)
        self._done(name)

    def _split_ingest(self) -> None:
        """The entries no worker has acknowledged, into their shard's stream."""
        from cloud_analyzer.pending_faces import unacknowledged_entries

        for fields in unacknowledged_entries(self.r, k.LEGACY_INGEST):
            face_id = fields[b"face_id"].decode()
            self.r.xadd(k.ingest_stream_of(face_id), fields)
        self._done(k.LEGACY_INGEST)

    def _split_clusters(self, name: str) -> None:
        key_of = _CLUSTER_INDEXES[name]
        if name == k.LEGACY_CLUSTER_OF:
            for face_id, cluster_id in self.r.hgetall(name).items():
                self.r.hset(key_of(k.cluster_shard(cluster_id.decode())), face_id, cluster_id)
            return self._done(name)
        return self._split_zset(name, lambda cluster_id: key_of(k.cluster_shard(cluster_id)))

    def _reindex_centroids(self) -> None:
        """Several cluster shards: each cluster's centroid re-added to its shard's vector set, from its sum."""
        for key in k.CLUSTER_INDEXES:
            for cluster_id in (c.decode() for c in self.r.zrange(key, 0, -1)):
                model, total = self.r.hmget(k.cluster_key(cluster_id), "descriptor_model", "sum")
                if model is None or total is None or model.decode() not in self.centroids:
                    continue
                centroid = np.frombuffer(total, "<f8").astype(np.float32)
                centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
                self.r.execute_command("VADD", k.unknown_vset_key(model.decode(), k.cluster_shard(cluster_id)),
                                       "FP32", centroid.astype("<f4").tobytes(), cluster_id, "Q8")

    def _move_denials(self, name: str) -> None:
        for member, score in self.r.zrange(name, 0, -1, withscores=True):
            old = member.decode()
            new = k.DENIALS_PENDING.rsplit(":", 1)[0] + ":" + old[len(k.LEGACY_DENIAL_PREFIX):]
            if self.r.exists(old):
                self.r.rename(old, new)
            self.r.zadd(k.DENIALS_PENDING, {new: score})
        self._done(name)

    def _reindex_galleries(self) -> None:
        """Several gallery shards: each identity's template re-added to its shard's vector set and counted
        in its shard's enrolment counts, from what its record and mean say."""
        for identity_id in (i.decode() for key in k.IDENTITY_INDEXES for i in self.r.zrange(key, 0, -1)):
            model, enrol = self.r.hmget(k.identity_key(identity_id), "descriptor_model", "enrol_key")
            mean = self.r.get(k.mean_key(identity_id))
            if model is None or enrol is None or mean is None or model.decode() not in self.galleries:
                continue
            self.r.execute_command("VADD", k.gallery_of(model.decode(), identity_id), "FP32", mean, identity_id, "Q8")
            self.r.hincrby(k.enrol_counts_of(model.decode(), identity_id), enrol.decode(), 1)
