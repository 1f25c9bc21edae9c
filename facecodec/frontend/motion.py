"""Where to look for faces in a fixed camera's frame: the parts that changed, and where people already are.

A camera in a corridor or at a gate sees the same walls in every frame. Searching all of a 1080p frame
for 40 px faces costs most of the edge's time (`bench/detection.py`), yet a face that was not there a
moment ago can only arrive with motion. `MotionGate` compares a small grey thumbnail of each frame with
the camera's previous one and returns the regions that changed, widened by a margin and joined with
the boxes of people being tracked (someone standing still must stay tracked). Every `refresh_s`, or
when changes cover more than `max_share` of the frame, it returns None: search the whole frame, so
nothing static is missed for longer than one refresh (a poster's face, a person who walked in while the
camera was not sending).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

Box = tuple[float, float, float, float]
MIN_REGION = (320, 240)  # a region narrower than the detector's input would only be upsampled


class MotionGate:
    def __init__(self, cell: int = 16, threshold: float = 10.0, margin_px: int = 96, refresh_s: float = 2.0,
                 max_share: float = 0.5) -> None:
        self.cell, self.threshold, self.margin_px = cell, threshold, margin_px
        self.refresh_s, self.max_share = refresh_s, max_share
        self._reference: np.ndarray | None = None
        self._last_full = -float("inf")
        self._lock = threading.Lock()

    def regions(self, rgb: np.ndarray, keep: Sequence[Box] = (), now: float | None = None) -> list[Box] | None:
        """Regions of `rgb` (x1, y1, x2, y2 in its pixels) worth searching, or None for the whole frame."""
        import cv2

        now = time.monotonic() if now is None else now
        h, w = rgb.shape[:2]
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(grey, (max(w // self.cell, 1), max(h // self.cell, 1)),
                           interpolation=cv2.INTER_AREA).astype(np.int16)
        with self._lock:
            reference, self._reference = self._reference, thumb
            if reference is None or reference.shape != thumb.shape or now - self._last_full >= self.refresh_s:
                self._last_full = now
                return None
        changed = (np.abs(thumb - reference) > self.threshold).astype(np.uint8)
        grow = max(1, round(self.margin_px / self.cell))
        changed = cv2.dilate(changed, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
        count, _, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
        boxes = [(float(x * self.cell), float(y * self.cell), float((x + bw) * self.cell), float((y + bh) * self.cell))
                 for x, y, bw, bh, _ in stats[1:count]]
        boxes += [_grown(b, self.margin_px) for b in keep]
        boxes = _merged([_at_least(_clipped(b, w, h), w, h) for b in boxes])
        if sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes) > self.max_share * w * h:
            with self._lock:
                self._last_full = now
            return None
        return boxes


def _grown(box: Box, margin: float) -> Box:
    x1, y1, x2, y2 = box
    return x1 - margin, y1 - margin, x2 + margin, y2 + margin


def _clipped(box: Box, w: int, h: int) -> Box:
    x1, y1, x2, y2 = box
    return max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)


def _at_least(box: Box, w: int, h: int) -> Box:
    """Widen a region to the detector's input size where the frame allows, keeping its centre."""
    x1, y1, x2, y2 = box
    for lo, hi, size, limit in ((0, 2, MIN_REGION[0], w), (1, 3, MIN_REGION[1], h)):
        span = (x1, y1, x2, y2)
        short = size - (span[hi] - span[lo])
        if short > 0:
            a, b = span[lo] - short / 2, span[hi] + short / 2
            a, b = (0.0, min(float(limit), b - a)) if a < 0 else (a, b)
            a, b = (max(0.0, a - (b - limit)), float(limit)) if b > limit else (a, b)
            if lo == 0:
                x1, x2 = a, b
            else:
                y1, y2 = a, b
    return x1, y1, x2, y2


def _merged(boxes: list[Box]) -> list[Box]:
    """Join overlapping regions until none overlap (a face on a seam is then in one region)."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes
