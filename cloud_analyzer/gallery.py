"""The enrolled gallery as an in-memory matrix, rebuilt from Redis whenever its version changes."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from cloud_analyzer.store import Store


@dataclass(frozen=True)
class Match:
    identity_id: str
    name: str
    similarity: float


class Gallery:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._version = -1
        self._matrix = np.zeros((0, 0), np.float32)
        self._owners: list[int] = []
        self._identities: list[tuple[str, str]] = []

    def _refresh(self) -> None:
        if self.store.gallery_version() == self._version:
            return
        with self._lock:
            version, rows = self.store.all_templates()
            self._identities = [(identity_id, name) for identity_id, name, _ in rows]
            self._owners = [i for i, (_, _, t) in enumerate(rows) for _ in range(len(t))]
            self._matrix = np.concatenate([t for _, _, t in rows]) if rows else np.zeros((0, 0), np.float32)
            self._version = version

    def search(self, descriptor: np.ndarray, k: int = 5) -> list[Match]:
        """Top-k identities by their best template's cosine similarity to `descriptor`."""
        self._refresh()
        with self._lock:
            if not len(self._matrix):
                return []
            sims = self._matrix @ descriptor.astype(np.float32)
            best: dict[int, float] = {}
            for owner, sim in zip(self._owners, sims):
                best[owner] = max(best.get(owner, -2.0), float(sim))
            ranked = sorted(best.items(), key=lambda kv: -kv[1])[:k]
            return [Match(*self._identities[i], sim) for i, sim in ranked]

    def __len__(self) -> int:
        self._refresh()
        return len(self._identities)
