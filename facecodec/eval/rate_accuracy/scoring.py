"""Scoring a set of decoded descriptors: verification (cross-validated), TAR at a FAR, rank-1."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from facecodec.eval.metrics import all_pairs_scores, rank1, tar_at_far, unit, verification_accuracy_cv
from facecodec.eval.rate_accuracy.evalset import EVAL_FOLDS, FAR, EvalSet


def gallery_probe_split(keys: np.ndarray, identities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gallery = first image (sorted key) of every identity; probes = the rest of identities with >= 2."""
    order = np.argsort(keys, kind="stable")
    seen: set[str] = set()
    gallery, probes = [], []
    for i in order.tolist():
        (probes if identities[i] in seen else gallery).append(i)
        seen.add(identities[i])
    return np.array(gallery, int), np.array(probes, int)


def pair_scores(decoded: dict[int, np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    da = unit(np.stack([decoded[i] for i in a.tolist()]))
    db = unit(np.stack([decoded[i] for i in b.tolist()]))
    return np.einsum("ij,ij->i", da, db)


def verification(ev: EvalSet, decoded: dict[int, np.ndarray], folds: Iterable[int]) -> tuple[float, float]:
    mask = ev.pairs_in(folds)
    scores = pair_scores(decoded, ev.pair_a[mask], ev.pair_b[mask])
    return verification_accuracy_cv(scores, ev.same[mask], ev.fold[mask])


def identification(ev: EvalSet, decoded: dict[int, np.ndarray], idx: np.ndarray) -> dict[str, float]:
    """TAR at FAR=1e-3 (all-vs-all, upper triangle) and rank-1 over the images `idx`."""
    desc = np.stack([decoded[i] for i in idx.tolist()])
    identities = ev.faces.identities[idx]
    genuine, impostor = all_pairs_scores(desc, identities)
    gallery, probes = gallery_probe_split(ev.faces.keys[idx], identities)
    return {
        "tar_at_far_1e-3": tar_at_far(genuine, impostor, FAR),
        "rank1": rank1(desc[gallery], identities[gallery], desc[probes], identities[probes]),
        "genuine_pairs": int(len(genuine)),
        "impostor_pairs": int(len(impostor)),
        "rank1_gallery": int(len(gallery)),
        "rank1_probes": int(len(probes)),
    }


def score(ev: EvalSet, decoded: dict[int, np.ndarray], tenfold: bool, ident_idx: np.ndarray) -> dict:
    acc, std = verification(ev, decoded, EVAL_FOLDS)
    row: dict = {"verification_accuracy": acc, "verification_std": std}
    if tenfold:
        acc10, std10 = verification(ev, decoded, range(1, 11))
        row |= {"verification_accuracy_10fold": acc10, "verification_std_10fold": std10}
    return row | identification(ev, decoded, ident_idx)
