"""Bjøntegaard delta rate (BD-rate): the average bit-rate difference between two rate-quality curves.

Method (G. Bjøntegaard, VCEG-M33 / VCEG-AL22, as used by JVET/AOM common test conditions):

1. for each curve, model log10(rate) as a function of quality (PSNR in dB, or MS-SSIM in dB);
2. integrate both models over the quality interval where the curves overlap;
3. the mean log-rate difference d over that interval gives BD-rate = (10**d - 1) * 100 %.

Interpolation: when both curves have exactly 4 points, the classic cubic polynomial fit (exact
through the 4 points) is used. When either curve has more than 4 points, *both* curves use
piecewise cubic Hermite interpolation (`scipy.interpolate.PchipInterpolator`), the modern
recommendation (VCEG-AL22, JVET-common test conditions): a single cubic through many points
can overshoot and even turn non-monotonic, and using one interpolator for both curves keeps the
comparison unbiased.

Sign convention: `bd_rate(anchor..., test...)` is the rate of the *test* curve (B) relative to the
*anchor* (A); negative means B needs fewer bits for the same quality.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

MIN_POINTS = 4


def _curve(rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    """(quality, log10 rate) sorted by quality, or None when fewer than MIN_POINTS usable points.

    Points with non-positive rate or non-finite values are dropped (e.g. PSNR = inf for a lossless
    point). Equal qualities are merged (mean log-rate) because the interpolators need strictly
    increasing abscissae.
    """
    r = np.asarray(rate, np.float64).reshape(-1)
    q = np.asarray(quality, np.float64).reshape(-1)
    if r.shape != q.shape:
        raise ValueError("rate and quality must have the same length")
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    q, log_r = q[keep], np.log10(r[keep])
    unique_q, inverse = np.unique(q, return_inverse=True)
    merged = np.bincount(inverse, weights=log_r) / np.bincount(inverse)
    if len(unique_q) < MIN_POINTS:
        return None
    return unique_q, merged


def _integral(q: np.ndarray, log_r: np.ndarray, lo: float, hi: float, piecewise: bool) -> float:
    if piecewise:
        return float(PchipInterpolator(q, log_r).integrate(lo, hi))
    antiderivative = np.polyint(np.polyfit(q, log_r, 3))
    return float(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo))


def bd_rate(
    rate_a: Sequence[float], quality_a: Sequence[float], rate_b: Sequence[float], quality_b: Sequence[float]
) -> float | None:
    """Average rate difference of curve B against anchor A, in percent (negative = B uses fewer bits).

    Returns None when either curve has fewer than 4 usable points or the quality ranges do not overlap.
    """
    a, b = _curve(rate_a, quality_a), _curve(rate_b, quality_b)
    if a is None or b is None:
        return None
    lo, hi = max(a[0][0], b[0][0]), min(a[0][-1], b[0][-1])
    if not hi > lo:
        return None
    piecewise = len(a[0]) > MIN_POINTS or len(b[0]) > MIN_POINTS
    mean_diff = (_integral(*b, lo, hi, piecewise) - _integral(*a, lo, hi, piecewise)) / (hi - lo)
    return float((10.0**mean_diff - 1.0) * 100.0)


def msssim_db(ms_ssim: Sequence[float] | np.ndarray) -> np.ndarray:
    """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM): spreads out the crowded region near 1."""
    x = np.asarray(ms_ssim, np.float64)
    with np.errstate(divide="ignore"):
        return -10.0 * np.log10(np.maximum(1.0 - x, 0.0))
