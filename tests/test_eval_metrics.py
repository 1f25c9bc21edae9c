"""The evaluation metrics on small cases whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec.eval.metrics import (
    all_pairs_scores,
    best_threshold,
    rank1,
    tar_at_far,
    verification_accuracy_cv,
)


def test_perfectly_separable_scores_give_accuracy_one() -> None:
    rng = np.random.default_rng(0)
    labels = np.tile([True, False], 50)
    scores = np.where(labels, rng.uniform(0.6, 1.0, 100), rng.uniform(-0.2, 0.4, 100))
    folds = np.repeat(np.arange(1, 6), 20)
    mean, std = verification_accuracy_cv(scores, labels, folds)
    assert mean == 1.0 and std == 0.0


def test_best_threshold_falls_midway_in_the_gap() -> None:
    scores = np.array([0.1, 0.2, 0.7, 0.9])
    labels = np.array([False, False, True, True])
    assert best_threshold(scores, labels) == pytest.approx(0.45)


def test_best_threshold_never_splits_tied_scores() -> None:
    # Tied 0.5s with opposite labels: no threshold separates them, so the best is 3/4 correct.
    scores = np.array([0.1, 0.5, 0.5, 0.9])
    labels = np.array([False, False, True, True])
    t = best_threshold(scores, labels)
    assert np.mean((scores >= t) == labels) == 0.75


def test_cross_validated_accuracy_by_hand() -> None:
    # Two folds of four pairs. Fold 1's best threshold is 0.5 (between 0.4 and 0.6), which on
    # fold 2 misclassifies the positive at 0.45: 3/4. Fold 2 alone is separable at 0.435 (between
    # 0.42 and 0.45), which gets all of fold 1 right: 4/4. Mean 0.875, std 0.125.
    scores = np.array([0.2, 0.4, 0.6, 0.8, 0.1, 0.42, 0.45, 0.9])
    labels = np.array([False, False, True, True, False, False, True, True])
    folds = np.array([1, 1, 1, 1, 2, 2, 2, 2])
    mean, std = verification_accuracy_cv(scores, labels, folds)
    assert mean == pytest.approx(0.875)
    assert std == pytest.approx(0.125)


def test_chance_scores_give_about_half() -> None:
    rng = np.random.default_rng(1)
    labels = rng.random(4000) < 0.5
    mean, _ = verification_accuracy_cv(rng.random(4000), labels, np.repeat(np.arange(10), 400))
    assert 0.45 < mean < 0.55


def test_tar_at_far_hand_computed() -> None:
    # 1000 impostors 0.000 .. 0.999; FAR 1% accepts the 10 highest, i.e. threshold 0.989, accept > 0.989.
    impostor = np.arange(1000) / 1000
    genuine = np.array([0.5, 0.98, 0.989, 0.99, 0.995, 1.2])
    assert tar_at_far(genuine, impostor, far=1e-2) == pytest.approx(3 / 6)
    accepted = np.mean(impostor > 0.989)
    assert accepted == pytest.approx(1e-2)


def test_tar_at_far_zero_tolerance_and_separable() -> None:
    impostor = np.array([0.1, 0.2, 0.3])
    assert tar_at_far([0.31, 0.25, 0.9], impostor, far=0.0) == pytest.approx(2 / 3)
    assert tar_at_far([0.5, 0.6], impostor, far=1e-3) == 1.0


def test_rank1_hand_case() -> None:
    gallery = np.array([[1.0, 0.0], [0.0, 1.0]])
    gallery_labels = np.array(["a", "b"])
    probes = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [3.0, 0.1]])  # the last is unnormalised
    probe_labels = np.array(["a", "b", "b", "a"])
    assert rank1(gallery, gallery_labels, probes, probe_labels) == pytest.approx(3 / 4)


def test_all_pairs_scores_counts_and_values() -> None:
    rng = np.random.default_rng(2)
    d = rng.normal(size=(7, 4))
    labels = np.array(["x", "x", "y", "y", "y", "z", "x"])
    genuine, impostor = all_pairs_scores(d, labels, block=3)  # several blocks, uneven last one
    # Genuine pairs: C(3,2) for x + C(3,2) for y = 6; all pairs C(7,2) = 21.
    assert len(genuine) == 6 and len(impostor) == 15
    u = d / np.linalg.norm(d, axis=1, keepdims=True)
    sim = u @ u.T
    i, j = np.triu_indices(7, 1)
    same = labels[i] == labels[j]
    np.testing.assert_allclose(np.sort(genuine), np.sort(sim[i, j][same]), rtol=1e-5)
    np.testing.assert_allclose(np.sort(impostor), np.sort(sim[i, j][~same]), rtol=1e-5)
