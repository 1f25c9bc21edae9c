"""The enrolled gallery, searched in Redis: one template per identity in a vector set per descriptor model.

An identity's template is the normalised mean of its enrolment descriptors (`facecodec.openset`), so
a search makes one comparison per identity and a stranger meets each enrolled person once, however
many photos they were enrolled with. Templates carry the descriptor model that made them; a probe is
only ever compared with identities of its own model (a recogniser change never mixes feature spaces).

The index lives in Redis (`Store` writes it with every enrolment, photo and erasure), so every analyzer
replica answers from the same gallery the moment a change commits, and a restarted replica has nothing
to load. A search is one transaction: the gallery version, its enrolment make-up (for the open-set
threshold), its size and the vector set's approximate top candidates (HNSW, 8-bit quantised); the
candidates are then re-ranked by the exact cosine of their float32 templates, so scores are exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud_analyzer.corrections import closest_negative
from cloud_analyzer.store import Store
from service_common.redis_keys import (
    GALLERY_SHARDS,
    enrol_counts_key,
    gallery_key,
    gallery_version_key,
    identity_key,
    mean_key,
    negatives_key,
)

RERANK = 16  # approximate candidates re-scored exactly (>= k)
# VSIM's exploration factor for the whole gallery (ANALYZER_GALLERY_SEARCH_EF's default). Measured at 100k
# random 512-d templates, one shard, COUNT 16 (bench/gallery_ef.py, 1,000 probes): recall@1 0.749 / 0.921 /
# 0.987 / 0.998 at EF 100 (VSIM's default) / 200 / 400 / 800, for 3.4 / 6.1 / 10.9 / 19.8 ms of server CPU
# per search. Real face descriptors are easier (0.998 at EF 100: bench/gallery_search.py); random ones are
# the worst case. Each of G shards explores SEARCH_EF / G (shard_ef): a shard of 1/G of the identities needs
# about that (33k templates: 0.994 at EF 200, 1.0 at 400; 16.7k: 0.995 at EF 100, 0.999 at 200). Measured
# on the sharded gallery (bench/cluster_scaling.py) a search over 3 or 6 shards still costs 1.4-1.6x one
# shard's: each shard's graph walk has its own fixed part (docs/scaling.md).
SEARCH_EF = 800


@dataclass(frozen=True)
class Match:
    identity_id: str
    name: str
    similarity: float
    threshold_override: float | None = None  # the identity's own cosine, set for look-alikes (corrections.py)


@dataclass(frozen=True)
class GalleryView:
    """What a decision needs of the gallery for one descriptor model, read under one version."""

    version: int
    size: int
    enrol_counts: dict[int, int]


class Gallery:
    def __init__(self, store: Store, rerank: int = RERANK, ef: int | None = SEARCH_EF) -> None:
        self.store, self.rerank, self.ef = store, rerank, ef

    def search(self, descriptor: np.ndarray, model: str, k: int = 5) -> tuple[GalleryView, list[Match]]:
        """Top-k identities of `model` by cosine similarity of `descriptor` to their template, and the
        gallery they were ranked in (read together, so a decision never mixes two versions)."""
        probe = np.asarray(descriptor, "<f4")
        ef = shard_ef(self.ef, max(k, self.rerank))
        # Each gallery shard's version, counts, size and candidates; one shard: in one transaction (a decision
        # never mixes two versions), several: in one pipeline (each node answers its shards at once).
        pipe = self.store.r.pipeline(transaction=GALLERY_SHARDS == 1)
        for shard in range(GALLERY_SHARDS):
            pipe.get(gallery_version_key(shard))
            pipe.hgetall(enrol_counts_key(model, shard))
            pipe.execute_command("VCARD", gallery_key(model, shard))
            pipe.execute_command("VSIM", gallery_key(model, shard), "FP32", probe.tobytes(), "WITHSCORES",
                                 "COUNT", max(k, self.rerank), *(("EF", ef) if ef else ()))
        replies = pipe.execute()
        counts: dict[int, int] = {}
        for raw in replies[1::4]:
            for e, n in raw.items():
                counts[int(e)] = counts.get(int(e), 0) + int(n)
        view = GalleryView(sum(int(v or 0) for v in replies[0::4]), sum(int(n or 0) for n in replies[2::4]),
                           {e: n for e, n in counts.items() if n > 0})
        # The shards' candidates, best approximate first, merged by the exact re-rank below.
        approximate = sorted(((float(score), i) for reply in replies[3::4] for i, score in _pairs(reply)),
                             reverse=True)[: max(k, self.rerank)]
        approximate = [i for _, i in approximate]
        if not approximate:
            return view, []
        ids = [i.decode() for i in approximate]
        pipe = self.store.r.pipeline(transaction=False)
        for identity_id in ids:
            pipe.get(mean_key(identity_id))
            pipe.hmget(identity_key(identity_id), "name", "threshold_override")
        replies = pipe.execute()
        matches = []
        for identity_id, template, (name, override) in zip(ids, replies[::2], replies[1::2]):
            if template is None or name is None:  # erased between the two reads
                continue
            matches.append(Match(identity_id, name.decode(), float(np.frombuffer(template, "<f4") @ probe),
                                 float(override) if override else None))
        matches.sort(key=lambda m: -m.similarity)
        return view, matches[:k]

    def closest_negative(self, identity_id: str, probe: np.ndarray) -> float | None:
        """The probe's highest cosine to a face people said is not this identity (None: it has none)."""
        return closest_negative(self.store.r.hvals(negatives_key(identity_id)), probe)
    def enrol_counts(self, model: str) -> dict[int, int]:
        """The gallery's make-up for `model`: enrolment key -> identities (what thresholds depend on)."""
        pipe = self.store.r.pipeline(transaction=False)
        for shard in range(GALLERY_SHARDS):
            pipe.hgetall(enrol_counts_key(model, shard))
        counts: dict[int, int] = {}
        for raw in pipe.execute():
            for e, n in raw.items():
                counts[int(e)] = counts.get(int(e), 0) + int(n)
        return {e: n for e, n in counts.items() if n > 0}

    def __len__(self) -> int:
        return self.store.identity_count()


def shard_ef(ef: int | None, count: int) -> int | None:
    """What one of the GALLERY_SHARDS vector sets explores of a search that explores `ef` of the whole
    gallery (None: VSIM's default); never below the candidates asked for."""
    return None if ef is None else max(count, -(-ef // GALLERY_SHARDS))


def _pairs(reply: Any) -> list[tuple[bytes, Any]]:
    """VSIM WITHSCORES as (element, score): a flat list (RESP2) or a map (RESP3)."""
    if isinstance(reply, dict):
        return list(reply.items())
    return list(zip(reply[::2], reply[1::2])) if reply else []
