"""Face-recognition figures of merit, in plain numpy so they are easy to check by hand.

- `verification_accuracy_cv`: LFW-style k-fold accuracy (threshold fitted on the other folds).
- `tar_at_far`: true-accept rate at a fixed false-accept rate.
- `rank1`: closed-set identification, nearest gallery descriptor by cosine similarity.
- `all_pairs_scores`: genuine/impostor cosine scores over every unordered pair of a set.
"""

from __future__ import annotations

import numpy as np


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold t maximising accuracy of "same iff score >= t" on (scores, labels).

    Every distinct split of the sorted scores is tried, so the result is the exact optimum; it is
    placed midway between the two scores that the split falls between, which generalises better to
    unseen folds than either score itself.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    n = len(s)
    # With the threshold just above s[i-1] (i items below it): correct = negatives below + positives at/above.
    neg_below = np.concatenate([[0], np.cumsum(~y)])
    pos_at_or_above = y.sum() - np.concatenate([[0], np.cumsum(y)])
    correct = neg_below + pos_at_or_above  # index i = number of items predicted "different"
    # A threshold can only fall between two distinct scores; a split inside a run of ties is not realisable.
    valid = np.ones(n + 1, bool)
    valid[1:n] = s[1:] > s[:-1]
    i = int(np.argmax(np.where(valid, correct, -1)))
    if i == 0:
        return float(s[0] - 1e-6) if n else 0.0
    if i == n:
        return float(s[-1] + 1e-6)
    return float((s[i - 1] + s[i]) / 2)


def verification_accuracy_cv(
    scores: np.ndarray, labels: np.ndarray, folds: np.ndarray
) -> tuple[float, float]:
    """Mean and (population) std of test-fold accuracy; each fold's threshold is fitted on the others."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, bool)
    folds = np.asarray(folds)
    if not len(scores) == len(labels) == len(folds):
        raise ValueError("scores, labels and folds must have the same length")
    accuracies = []
    for fold in np.unique(folds):
        test = folds == fold
        if test.all():
            raise ValueError("cross-validation needs at least two folds")
        threshold = best_threshold(scores[~test], labels[~test])
        accuracies.append(float(np.mean((scores[test] >= threshold) == labels[test])))
    return float(np.mean(accuracies)), float(np.std(accuracies))


def far_threshold(impostor_scores: np.ndarray, far: float) -> float:
    """The score above which (strictly) at most `far` of the impostor scores lie."""
    impostor = np.asarray(impostor_scores, np.float64).reshape(-1)
    k = int(np.floor(far * impostor.size + 1e-9))
    if k >= impostor.size:
        return float(impostor.min())
    return float(np.partition(impostor, impostor.size - 1 - k)[impostor.size - 1 - k])


def tar_at_far(genuine_scores: np.ndarray, impostor_scores: np.ndarray, far: float = 1e-3) -> float:
    """Fraction of genuine scores above the threshold that accepts at most `far` of the impostors.

    The threshold is the (k+1)-th highest impostor score with k = floor(far * n_impostors), and
    acceptance is strict (score > threshold), so at most k impostors are accepted: the achieved FAR
    never exceeds the requested one.
    """
    impostor = np.asarray(impostor_scores, np.float64).reshape(-1)
    genuine = np.asarray(genuine_scores, np.float64).reshape(-1)
    if impostor.size == 0 or genuine.size == 0:
        raise ValueError("need at least one genuine and one impostor score")
    if int(np.floor(far * impostor.size + 1e-9)) >= impostor.size:
        return 1.0
    # np.partition (inside far_threshold) finds the k-th largest in O(n): this runs on ~20M scores.
    return float(np.mean(genuine > far_threshold(impostor, far)))


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (peak 255)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def rank1(
    gallery_desc: np.ndarray, gallery_labels: np.ndarray, probe_desc: np.ndarray, probe_labels: np.ndarray
) -> float:
    """Fraction of probes whose most similar gallery descriptor (cosine) has the probe's label."""
    gallery_labels = np.asarray(gallery_labels)
    probe_labels = np.asarray(probe_labels)
    if len(probe_labels) == 0:
        raise ValueError("no probes")
    similarity = unit(probe_desc) @ unit(gallery_desc).T
    return float(np.mean(gallery_labels[np.argmax(similarity, axis=1)] == probe_labels))


def all_pairs_scores(
    descriptors: np.ndarray, labels: np.ndarray, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores of every unordered pair (upper triangle), split into genuine and impostor.

    Built row block by row block so ~6k descriptors (20M pairs) never need the full similarity
    matrix plus index arrays in memory at once.
    """
    d = unit(descriptors)
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    n = len(d)
    genuine, impostor = [], []
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        sim = d[r0:r1] @ d[r0:].T  # columns from r0 on: only they can be above the diagonal
        rows = np.arange(r0, r1)[:, None]
        upper = np.arange(r0, n)[None, :] > rows
        same = codes[r0:r1, None] == codes[None, r0:]
        genuine.append(sim[upper & same])
        impostor.append(sim[upper & ~same])
    return np.concatenate(genuine), np.concatenate(impostor)
