"""Similarity-transform alignment of a face to the canonical 112x112 ArcFace crop."""

from __future__ import annotations

import numpy as np

CROP_SIZE = 112
# The five reference points of the 112x112 ArcFace template (eyes, nose, mouth corners).
REFERENCE_POINTS = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity transform (rotation, uniform scale, translation) that maps `src` onto `dst`
    with the least squared error over all points (Umeyama 1991)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(sigma) @ sign) / (s**2).sum(1).mean()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - scale * rotation @ mu_s
    return matrix


def align(rgb: np.ndarray, points: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Warp `rgb` so that `points` (5x2) land on the template; returns size x size x 3 uint8."""
    import cv2

    points = np.asarray(points, np.float64)
    if not np.isfinite(points).all() or np.ptp(points, axis=0).max() < 1e-3:
        raise ValueError("landmarks are degenerate; cannot align")
    # A least-squares fit to all five points: cv2.estimateAffinePartial2D's default RANSAC (3 px) drops
    # points it calls outliers, which cost 0.8 pp of LFW accuracy (bench/alignment_compare.py).
    matrix = similarity_lstsq(points, REFERENCE_POINTS * (size / CROP_SIZE))
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
