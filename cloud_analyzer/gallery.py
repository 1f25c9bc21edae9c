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

import numpy as np

from cloud_analyzer.corrections import closest_negative
from cloud_analyzer.store import Store
from service_common.redis_keys import (
    GALLERY_VERSION,
    IDENTITIES,
    enrol_counts_key,
    gallery_key,
    identity_key,
    mean_key,
    negatives_key,
)

RERANK = 16  # approximate candidates re-scored exactly (>= k)


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
    def __init__(self, store: Store, rerank: int = RERANK) -> None:
        self.store, self.rerank = store, rerank

    def search(self, descriptor: np.ndarray, model: str, k: int = 5) -> tuple[GalleryView, list[Match]]:
        """Top-k identities of `model` by cosine similarity of `descriptor` to their template, and the
        gallery they were ranked in (read together, so a decision never mixes two versions)."""
        probe = np.asarray(descriptor, "<f4")
        pipe = self.store.r.pipeline(transaction=True)
        pipe.get(GALLERY_VERSION)
        pipe.hgetall(enrol_counts_key(model))
        pipe.execute_command("VCARD", gallery_key(model))
        pipe.execute_command("VSIM", gallery_key(model), "FP32", probe.tobytes(), "WITHSCORES",
                             "COUNT", max(k, self.rerank))
        version, counts, size, approximate = pipe.execute()
        view = GalleryView(int(version or 0), int(size or 0),
                           {int(e): int(n) for e, n in counts.items() if int(n) > 0})
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
        raw = self.store.r.hgetall(enrol_counts_key(model))
        return {int(e): int(n) for e, n in raw.items() if int(n) > 0}

    def __len__(self) -> int:
        return int(self.store.r.zcard(IDENTITIES))
