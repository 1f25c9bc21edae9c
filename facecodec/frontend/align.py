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


def align(rgb: np.ndarray, points: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """Warp `rgb` so that `points` (5x2) land on the template; returns size x size x 3 uint8."""
    import cv2

    matrix, _ = cv2.estimateAffinePartial2D(points.astype(np.float32), REFERENCE_POINTS * (size / CROP_SIZE))
    if matrix is None:
        raise ValueError("landmarks are degenerate; cannot align")
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
