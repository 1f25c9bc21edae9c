"""BD-rate on curves whose answer is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec.eval.bd_rate import bd_rate, msssim_db

# A plausible, slightly curved rate-PSNR curve: 8 points (piecewise-cubic path) ...
RATE = np.array([0.15, 0.25, 0.4, 0.6, 0.9, 1.4, 2.2, 3.5])
PSNR = np.array([26.0, 28.1, 30.0, 31.8, 33.5, 35.6, 37.9, 40.2])
# ... and 4 points (classic cubic-polynomial path).
RATE4, PSNR4 = RATE[::2], PSNR[::2]


@pytest.mark.parametrize(("rate", "psnr"), [(RATE, PSNR), (RATE4, PSNR4)])
def test_identical_curves_give_zero(rate: np.ndarray, psnr: np.ndarray) -> None:
    assert bd_rate(rate, psnr, rate, psnr) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(("rate", "psnr"), [(RATE, PSNR), (RATE4, PSNR4)])
def test_half_the_rate_at_every_quality_is_minus_fifty_percent(rate: np.ndarray, psnr: np.ndarray) -> None:
    assert bd_rate(rate, psnr, rate / 2, psnr) == pytest.approx(-50.0, abs=1e-6)
    # And the anchor against the cheaper curve needs twice the bits.
    assert bd_rate(rate / 2, psnr, rate, psnr) == pytest.approx(100.0, abs=1e-6)


def test_mixed_point_counts_and_partial_overlap() -> None:
    # B is A at half the rate, sampled over a narrower range with fewer points: only the
    # interpolants' end slopes differ from A's, so the answer stays close to -50 %.
    half = bd_rate(RATE, PSNR, RATE[2:6] / 2, PSNR[2:6])
    assert half == pytest.approx(-50.0, abs=0.5)


def test_non_overlapping_quality_ranges_give_none() -> None:
    assert bd_rate(RATE, PSNR, RATE, PSNR + 100.0) is None


def test_too_few_points_give_none() -> None:
    assert bd_rate(RATE[:3], PSNR[:3], RATE, PSNR) is None
    # Non-finite points (e.g. an infinite PSNR) do not count.
    psnr = PSNR4.copy()
    psnr[-1] = np.inf
    assert bd_rate(RATE4, psnr, RATE, PSNR) is None


def test_point_order_does_not_matter() -> None:
    order = np.random.default_rng(0).permutation(len(RATE))
    assert bd_rate(RATE[order], PSNR[order], RATE / 2, PSNR) == pytest.approx(-50.0, abs=1e-6)


def test_msssim_db() -> None:
    assert msssim_db([0.9, 0.99]) == pytest.approx([10.0, 20.0])
    assert np.isinf(msssim_db([1.0])[0])
