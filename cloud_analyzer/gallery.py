"""The enrolled gallery: one template per identity, in memory, rebuilt from Redis when its version changes.

An identity's template is the normalised mean of its enrolment descriptors (`facecodec.openset`), so
a search makes one comparison per identity and a stranger meets each enrolled person once, however
many photos they were enrolled with. Templates carry the descriptor model that made them; a probe is
only ever compared with identities of its own model (a recogniser change never mixes feature spaces).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

import numpy as np

from cloud_analyzer.store import Store
from facecodec.openset import enrol_key, identity_template


@dataclass(frozen=True)
class Match:
    identity_id: str
    name: str
    similarity: float


@dataclass(frozen=True)
class _Space:
    """The identities of one descriptor model."""

    matrix: np.ndarray  # one unit template per identity
    identities: list[tuple[str, str]]  # (identity_id, name), row for row
    enrol_counts: Counter[int]  # enrolment key -> identities


@dataclass(frozen=True)
class GalleryView:
    """What a decision needs of the gallery for one descriptor model, read under one version."""

    version: int
    size: int
    enrol_counts: dict[int, int]


class Gallery:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._version = -1
        self._spaces: dict[str, _Space] = {}

    def _refresh(self) -> None:
        if self.store.gallery_version() == self._version:
            return
        with self._lock:
            version, rows = self.store.all_templates()
            spaces: dict[str, _Space] = {}
            grouped: dict[str, list[tuple[str, str, np.ndarray]]] = {}
            for identity_id, name, model, templates in rows:
                grouped.setdefault(model, []).append((identity_id, name, templates))
            for model, members in grouped.items():
                spaces[model] = _Space(
                    matrix=np.stack([identity_template(t) for _, _, t in members]),
                    identities=[(i, n) for i, n, _ in members],
                    enrol_counts=Counter(enrol_key(len(t)) for _, _, t in members),
                )
            self._spaces, self._version = spaces, version

    def search(self, descriptor: np.ndarray, model: str, k: int = 5) -> tuple[GalleryView, list[Match]]:
        """Top-k identities of `model` by cosine similarity of `descriptor` to their template, and the
        gallery they were ranked in (read together, so a decision never mixes two versions)."""
        self._refresh()
        with self._lock:
            space = self._spaces.get(model)
            if space is None:
                return GalleryView(self._version, 0, {}), []
            sims = space.matrix @ descriptor.astype(np.float32)
            top = np.argsort(-sims)[:k]
            view = GalleryView(self._version, len(space.identities), dict(space.enrol_counts))
            return view, [Match(*space.identities[i], float(sims[i])) for i in top]

    def __len__(self) -> int:
        self._refresh()
        with self._lock:
            return sum(len(s.identities) for s in self._spaces.values())
