"""The evaluation sets of the rate-accuracy benchmark: LFW View-2 pairs and the evaluation identities' images,
and the protocol's constants."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecodec.datasets import lfw_pairs
from facecodec.train.data import Faces, load, load_evaluation_faces

WEIGHTS = Path(__file__).resolve().parents[2] / "weights"  # facecodec/weights
EVAL_FOLDS = (6, 7, 8, 9, 10)
FAR = 1e-3
DIM = 512


@dataclass
class EvalSet:
    """LFW descriptors plus, as row indices into them, the pairs and the identification set."""

    faces: Faces  # every LFW image from lfw.npz
    pair_a: np.ndarray  # indices of each pair's images
    pair_b: np.ndarray
    same: np.ndarray  # bool
    fold: np.ndarray  # 1..10
    eval_idx: np.ndarray  # the all-vs-all / rank-1 set (evaluation identities), sorted by key
    limited: bool
    lfw_path: Path

    def pairs_in(self, folds: Iterable[int]) -> np.ndarray:
        return np.isin(self.fold, list(folds))

    def pair_images(self, folds: Iterable[int]) -> np.ndarray:
        mask = self.pairs_in(folds)
        return np.unique(np.concatenate([self.pair_a[mask], self.pair_b[mask]]))


def limit_pairs(pairs: list, limit: int | None) -> list:
    """Keep `limit` pairs per fold, half matched and half mismatched, so each fold stays balanced."""
    if limit is None:
        return pairs
    kept = []
    for fold in sorted({p.fold for p in pairs}):
        matched = [p for p in pairs if p.fold == fold and p.same]
        mismatched = [p for p in pairs if p.fold == fold and not p.same]
        kept += matched[: (limit + 1) // 2] + mismatched[: limit // 2]
    return kept


def load_eval_set(faces_root: Path, limit: int | None) -> EvalSet:
    lfw_path = faces_root / "lfw.npz"
    faces = load(lfw_path)
    index = {k: i for i, k in enumerate(faces.keys.tolist())}
    pairs = limit_pairs(lfw_pairs(), limit)
    missing = [k for p in pairs for k in (p.a, p.b) if k not in index]
    if missing:
        raise SystemExit(f"{len(missing)} pair images missing from {lfw_path}, e.g. {missing[:3]}")
    pair_a = np.array([index[p.a] for p in pairs])
    pair_b = np.array([index[p.b] for p in pairs])
    same = np.array([p.same for p in pairs])
    fold = np.array([p.fold for p in pairs])
    if limit is None:
        # The loader owns the evaluation-identity rule; map its images back onto lfw.npz rows.
        evaluation = load_evaluation_faces(faces_root)
        eval_idx = np.array([index[k] for k in evaluation.keys.tolist()])
    else:
        # A development run: identification over the limited pairs' images only (so it stays quick).
        mask = np.isin(fold, EVAL_FOLDS)
        eval_idx = np.unique(np.concatenate([pair_a[mask], pair_b[mask]]))
    eval_idx = eval_idx[np.argsort(faces.keys[eval_idx], kind="stable")]
    return EvalSet(faces, pair_a, pair_b, same, fold, eval_idx, limit is not None, lfw_path)
