"""The calibration that states its own uncertainty: per-source checks, quality bands, upper bounds, caveats."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec import openset
from facecodec.codec.profiles import codec_by_name


def _people(rng: np.random.Generator, n: int, per: int, spread: float, dim: int = 64) -> tuple:
    centres = openset.unit(rng.standard_normal((n, dim)))
    x = centres[:, None, :] + spread * openset.unit(rng.standard_normal((n, per, dim)))
    return openset.unit(x.reshape(n * per, dim)), np.repeat(np.arange(n), per)


@pytest.fixture(scope="module")
def checked() -> openset.OpenSetCalibration:
    """Two sources: one easy (tight identities), one hard (people who look alike: a shared direction)."""
    rng = np.random.default_rng(3)
    easy, easy_id = _people(rng, 300, 4, 0.8)
    hard, hard_id = _people(rng, 60, 4, 0.8)
    hard = openset.unit(hard + 0.9 * openset.unit(rng.standard_normal(64)))  # a look they share
    x = np.concatenate([easy, hard])
    ids = np.concatenate([easy_id, 1000 + hard_id])
    sources = np.array(["easy"] * len(easy) + ["hard"] * len(hard))
    quality = rng.uniform(0.2, 1.0, len(x))
    return openset.calibrate(x, ids, seed=0, sources=sources, quality=quality, described_as="easy + hard")


def test_the_hardest_source_sets_each_cell(checked: openset.OpenSetCalibration) -> None:
    assert checked.sources == "easy + hard"
    hard = [c for c in checked.checks if c.source == "hard" and c.band == "good"]
    easy = [c for c in checked.checks if c.source == "easy" and c.band == "good"]
    assert hard and easy
    assert np.mean([c.ratio for c in hard]) > np.mean([c.ratio for c in easy])
    independent = openset.OpenSetCalibration(checked.tails, 1.0, checked.band_tails)
    for k in (1, 3):
        # The stated rate is the hardest source's: thresholds no lower than the formula's own.
        assert checked.threshold(0.01, {k: 100}) >= independent.threshold(0.01, {k: 100})


def test_thresholds_are_monotone_and_bounds_ordered(checked: openset.OpenSetCalibration) -> None:
    for band in openset.QUALITY_BANDS:
        ts = [checked.threshold(0.01, {3: n}, 1, band) for n in (10, 100, 1000, 10_000)]
        assert ts == sorted(ts), band
        assert checked.threshold(0.001, {3: 100}, 1, band) > checked.threshold(0.01, {3: 100}, 1, band)
    point = checked.operating_point(0.01, {3: 100})
    assert point.fpir == pytest.approx(0.01, rel=0.05)
    assert point.fpir <= point.fpir_upper <= 1
    assert point.caveats == ()
    assert checked.operating_point(0.01, {1: 50_000}, 1, "low").caveats == (
        "gallery_beyond_calibration", "single_photo_enrolment", "low_quality")
    round_trip = openset.OpenSetCalibration.from_json(checked.to_json())
    assert round_trip.checks == checked.checks and set(round_trip.band_tails) == set(checked.band_tails)
    assert round_trip.threshold(0.01, {3: 100}, 1, "low") == pytest.approx(
        checked.threshold(0.01, {3: 100}, 1, "low"), abs=1e-3)


def test_clopper_pearson_upper_is_the_textbook_value() -> None:
    assert openset.clopper_pearson_upper(0, 100) == pytest.approx(0.0362, abs=1e-3)  # "rule of three"-like
    assert openset.clopper_pearson_upper(5, 246) == pytest.approx(0.0468, abs=1e-3)
    assert openset.quality_band(None) == "good" and openset.quality_band(0.1) == "low"


def test_committed_calibration_loads_with_its_checks() -> None:
    calibration = codec_by_name("scalable").open_set_calibration
    assert "CFP 001-250" in calibration.sources and "Glint" in calibration.sources
    assert {c.source for c in calibration.checks} >= {"lfw_train", "cfp_calibration"}
    for band in openset.QUALITY_BANDS:
        for frames in (1, 3):
            ts = [calibration.threshold(0.01, {3: n}, frames, band) for n in (100, 1000, 10_000)]
            assert ts == sorted(ts) and 0.2 < ts[0] < ts[-1] < 0.95
    point = calibration.operating_point(0.01, {1: 100})
    assert point.fpir <= 0.01 < point.fpir_upper < 0.05
    assert "single_photo_enrolment" in point.caveats
