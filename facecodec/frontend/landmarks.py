"""68-point landmarks (faceplugin ONNX), reduced to the 5 points that ArcFace-style alignment uses."""

from __future__ import annotations

import numpy as np

from facecodec.assets import model_path
from facecodec.frontend.runtime import open_session

INPUT_SIZE = 64


def _five(eyes: str, mouth: str):
    def reduce(p: np.ndarray) -> np.ndarray:
        if eyes == "lids":  # the faceplugin package's own converter: 4 lid points per eye
            left, right = p[[37, 38, 40, 41]].mean(0), p[[43, 44, 46, 47]].mean(0)
        else:  # all six contour points, corners included: steadier under blinks and lid noise
            left, right = p[36:42].mean(0), p[42:48].mean(0)
        if mouth == "mid":  # halfway between the outer and inner lip corners
            mouth_l, mouth_r = (p[48] + p[60]) / 2, (p[54] + p[64]) / 2
        else:  # the outer corners, where the ArcFace template's mouth points sit
            mouth_l, mouth_r = p[48], p[54]
        return np.stack([left, right, p[30], mouth_l, mouth_r]).astype(np.float32)

    return reduce


# 68 -> 5 point reductions compared by bench/alignment_compare.py.
FIVE_POINT_RECIPES = {
    "lids": _five("lids", "mid"),
    "contour": _five("contour", "outer"),
    "contour-eyes": _five("contour", "mid"),
    "outer-mouth": _five("lids", "outer"),
}


def five_points(points68: np.ndarray) -> np.ndarray:
    """Eyes, nose tip, mouth corners for ArcFace-style alignment."""
    return FIVE_POINT_RECIPES["lids"](points68)


def square_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """The square (side = box height) around the box centre, shifted to stay inside the image."""
    x1, y1, x2, y2 = box
    side = min(y2 - y1, width - 1, height - 1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(np.clip(cx - side / 2, 0, width - 1 - side))
    top = int(np.clip(cy - side / 2, 0, height - 1 - side))
    return left, top, max(int(side), 1), max(int(side), 1)


class LandmarkDetector:
    def __init__(self) -> None:
        import cv2

        self._cv2 = cv2
        self.session = open_session(model_path("fr_landmark.onnx"), name="landmarks")

    def __call__(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """Five landmarks (5x2, image pixels) for the face in `box`."""
        return five_points(self.points68(rgb, box))

    def points68(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """All 68 landmarks (68x2, image pixels) for the face in `box`."""
        h, w = rgb.shape[:2]
        left, top, bw, bh = square_box(box, w, h)
        patch = rgb[top : top + bh, left : left + bw]
        grey = self._cv2.cvtColor(
            self._cv2.resize(patch, (INPUT_SIZE, INPUT_SIZE), interpolation=self._cv2.INTER_LINEAR),
            self._cv2.COLOR_RGB2GRAY,
        )
        x = (grey.astype(np.float32) / 256.0)[None, None]
        out = self.session.run(None, {"input": x})[0].reshape(68, 2)
        return out * np.array([bw, bh], np.float32) + np.array([left, top], np.float32)
