"""Reading the unknown-face clusters (cloud_analyzer/clusters.py writes them): one cluster, pages of them,
their members, the clusters near a probe, a face's cluster. Over every cluster shard: the shards' vector
sets asked in one pipeline, their indexes merged in the order of one (the cursor is the same position), a
face looked up in every shard's CLUSTER_OF."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import redis

from cloud_analyzer.recognition import decode_base_layer
from facecodec.openset import unit
from service_common.pagination import merged_zset_positions
from service_common.redis_keys import (
    CLUSTER_INDEXES,
    CLUSTER_OF_SHARDS,
    CLUSTER_SHARDS,
    CLUSTER_SIZE_INDEXES,
    cluster_key,
    cluster_part_key,
    unknown_vset_key,
)

CANDIDATES = 8  # nearest centroids looked at per decision, in each shard
REPRESENTATIVES = 5
SHARDS = range(CLUSTER_SHARDS)


@dataclass(frozen=True)
class Cluster:
    cluster_id: str
    descriptor_model: str
    size: int
    first_seen_ms: int
    last_seen_ms: int
    created_at_ms: int
    cameras: dict[str, int]  # camera_id -> faces
    representative_face_ids: list[str]  # best first


class ClusterReads:
    r: redis.Redis

    def get(self, cluster_id: str) -> Cluster | None:
        pipe = self.r.pipeline(transaction=False)
        pipe.hmget(cluster_key(cluster_id), "descriptor_model", "size", "first_seen_ms", "last_seen_ms",
                   "created_at_ms")
        pipe.hgetall(cluster_part_key(cluster_id, "cameras"))
        pipe.zrevrange(cluster_part_key(cluster_id, "score"), 0, REPRESENTATIVES - 1)
        (model, size, first, last, created), cameras, reps = pipe.execute()
        if model is None:
            return None
        return Cluster(cluster_id, model.decode(), int(size), int(first), int(last), int(created or 0),
                       {c.decode(): int(n) for c, n in sorted(cameras.items())}, [r.decode() for r in reps])

    def list(self, order: str, after: tuple[int, str] | None, limit: int
             ) -> tuple[list[Cluster], tuple[int, str] | None]:
        """A page of clusters, largest (`order="size"`) or most recently seen (`"recent"`) first, starting
        after the position `after` (size or last seen, cluster id); also the position after this page,
        None on the last. Positions, not offsets: clusters merged meanwhile do not shift the pages."""
        indexes = CLUSTER_SIZE_INDEXES if order == "size" else CLUSTER_INDEXES
        found: list[tuple[int, Cluster]] = []
        # The shards' indexes merged in the order of one (score, then id): the cursor is the same position.
        for score, cluster_id in merged_zset_positions(self.r, indexes, after, limit + 16, descending=True):
            cluster = self.get(cluster_id)  # None: merged or erased since the index was read
            if cluster is not None:
                found.append((score, cluster))
            if len(found) > limit:
                break
        more = len(found) > limit
        found = found[:limit]
        return [c for _, c in found], ((found[-1][0], found[-1][1].cluster_id) if more else None)

    def members(self, cluster_id: str, limit: int = 100) -> list[str]:
        """Most recent member face ids first."""
        return [f.decode() for f in self.r.zrevrange(cluster_part_key(cluster_id, "members"), 0, limit - 1)]

    def above(self, model: str, probe: np.ndarray, min_similarity: float) -> list[tuple[str, int, float]]:
        """(cluster_id, size, exact cosine of its centroid to `probe`) of every cluster of `model` whose
        8-bit score reaches `min_similarity`, best first. Exhaustive (TRUTH, a linear scan): for erasure."""
        vector = unit(np.asarray(probe, np.float32))
        pipe = self.r.pipeline(transaction=False)
        for shard in SHARDS:
            pipe.execute_command("VCARD", unknown_vset_key(model, shard))
        cards = [int(n or 0) for n in pipe.execute()]
        if not any(cards):
            return []
        epsilon = min(max(1 - (min_similarity + 1) / 2, 0.0), 1.0)  # VSIM score = (cosine + 1) / 2
        pipe = self.r.pipeline(transaction=False)
        for shard, card in zip(SHARDS, cards):
            if card:
                pipe.execute_command("VSIM", unknown_vset_key(model, shard), "FP32", vector.astype("<f4").tobytes(),
                                     "COUNT", card, "EPSILON", epsilon, "TRUTH")
        ids = [c.decode() for raw in pipe.execute() for c in raw or []]
        return self._scored(ids, vector)

    def all_members(self, cluster_id: str) -> list[str]:
        return [f.decode() for f in self.r.zrange(cluster_part_key(cluster_id, "members"), 0, -1)]

    def of(self, face_id: str) -> str | None:
        """The face's cluster (its shard's CLUSTER_OF; asked of every shard). Two only while a cross-shard
        merge is half done: the target (the source has `moving_to`)."""
        pipe = self.r.pipeline(transaction=False)
        for key in CLUSTER_OF_SHARDS:
            pipe.hget(key, face_id)
        found = [raw.decode() for raw in pipe.execute() if raw]
        if len(found) > 1:
            found = [c for c in found if not self.r.hexists(cluster_key(c), "moving_to")] or found
        return found[0] if found else None

    @staticmethod
    def _decode(entry: bytes) -> np.ndarray:
        """The unit descriptor of a `camera_id|base layer` member entry."""
        return unit(decode_base_layer(entry.split(b"|", 1)[1])[0].astype(np.float32))

    def _candidates(self, model: str, vector: np.ndarray) -> list[str]:
        """The CANDIDATES nearest centroids (8-bit scores) of every shard, asked in one pipeline."""
        pipe = self.r.pipeline(transaction=False)
        for shard in SHARDS:
            pipe.execute_command("VSIM", unknown_vset_key(model, shard), "FP32", vector.astype("<f4").tobytes(),
                                 "COUNT", CANDIDATES)
        return [c.decode() for raw in pipe.execute() for c in raw or []]

    def _nearest(self, model: str, vector: np.ndarray, exclude: str | None = None) -> list[tuple[str, int, float]]:
        """(cluster_id, size, exact cosine to its centroid) of the nearest clusters of every shard, best first."""
        return self._scored([c for c in self._candidates(model, vector) if c != exclude], vector)

    def _scored(self, ids: list[str], vector: np.ndarray) -> list[tuple[str, int, float]]:
        """(cluster_id, size, exact cosine to its centroid, from the float sums), best first."""
        if not ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for cluster_id in ids:
            pipe.hmget(cluster_key(cluster_id), "size", "sum", "moving_to")
        out = []
        for cluster_id, (size, total, moving) in zip(ids, pipe.execute()):
            if size and total and int(size) > 0 and not moving:  # moving: merged into another (cluster_moves.py)
                centroid = unit(np.frombuffer(total, "<f8").astype(np.float32))
                out.append((cluster_id, int(size), float(centroid @ vector)))
        return sorted(out, key=lambda c: -c[2])
