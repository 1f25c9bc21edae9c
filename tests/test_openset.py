"""Open-set thresholds: FPIR held at its target as the gallery grows, on synthetic and committed figures."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec import openset
from facecodec.codec.profiles import codec_by_name


def _people(rng: np.random.Generator, n: int, per: int, dim: int = 64, spread: float = 0.9) -> tuple:
    """Synthetic descriptors: an identity direction plus photo-to-photo variation."""
    centres = openset.unit(rng.standard_normal((n, dim)))
    x = centres[:, None, :] + spread * openset.unit(rng.standard_normal((n, per, dim))) / np.sqrt(1.0)
    return openset.unit(x.reshape(n * per, dim)), np.repeat(np.arange(n), per)


def test_identity_template_is_the_unit_mean() -> None:
    x = np.array([[1.0, 0, 0], [0, 1.0, 0]], np.float32)
    assert np.allclose(openset.identity_template(x), [2**-0.5, 2**-0.5, 0], atol=1e-6)
    assert np.allclose(openset.identity_template(x[0]), x[0])


def test_tail_interpolates_and_extrapolates_conservatively() -> None:
    rng = np.random.default_rng(0)
    scores = rng.standard_normal(2_000_000) * 0.1
    tail = openset.ImpostorTail.from_scores(scores)
    for t in (0.1, 0.2, 0.3):  # inside the measured range: the empirical rate
        assert tail.far(t) == pytest.approx(np.mean(scores >= t), rel=0.15)
    beyond = 0.1 * 6.0  # six sigma, far below anything 2M scores can show: Gaussian FAR ~1e-9
    assert tail.far(beyond) >= 1e-9  # log-linear extrapolation overestimates a light tail
    assert tail.far(-2) == 1.0 and tail.far(0.7) <= tail.far(0.5) <= tail.far(0.3)
    assert openset.ImpostorTail.from_json(tail.to_json()).far(0.25) == pytest.approx(tail.far(0.25), rel=1e-3)
    assert tail.threshold_at(1e-3) == pytest.approx(np.quantile(scores, 1 - 1e-3), abs=0.01)


def test_threshold_holds_fpir_on_fresh_identities_as_the_gallery_grows() -> None:
    rng = np.random.default_rng(1)
    train_x, train_id = _people(rng, 600, 4)
    calibration = openset.calibrate(train_x, train_id)
    thresholds = []
    for gallery in (10, 100, 1000):
        x, ids = _people(rng, gallery + 2000, 2)
        templates = x[0 : 2 * gallery : 2]  # one enrolment image per identity
        strangers = x[2 * gallery :: 2]  # people never enrolled
        t = calibration.threshold(0.01, {1: gallery})
        thresholds.append(t)
        fpir = np.mean((strangers @ templates.T).max(1) >= t)
        assert fpir <= 0.02, (gallery, fpir)
        assert calibration.fpir(t, {1: gallery}) == pytest.approx(0.01, rel=0.05)
        mated = x[1 : 2 * gallery : 2]
        assert np.mean(np.argmax(mated @ templates.T, 1) == np.arange(gallery)) > 0.9
    assert thresholds[0] < thresholds[1] < thresholds[2]  # more identities, stricter threshold
    round_trip = openset.OpenSetCalibration.from_json(calibration.to_json())
    assert round_trip.threshold(0.01, {1: 100}) == pytest.approx(calibration.threshold(0.01, {1: 100}), abs=1e-3)
    assert round_trip.fpir_correction == pytest.approx(calibration.fpir_correction, abs=1e-4)


def test_committed_calibration_of_the_default_codec() -> None:
    calibration = codec_by_name("scalable").open_set_calibration
    assert set(calibration.tails) == {(k, m) for k in (1, 2, 3) for m in (1, 2, 3)}
    small, large = (calibration.threshold(0.01, {3: n}) for n in (100, 10_000))
    assert 0.3 < small < large < 0.9
    # A stricter target costs a higher threshold; a fixed pair threshold shows why per-pair FAR misleads.
    assert calibration.threshold(0.001, {3: 100}) > small
    assert calibration.fpir(codec_by_name("scalable").match_threshold, {1: 300}) > 0.1
    with pytest.raises(ValueError):
        calibration.threshold(0.0, {1: 10})
