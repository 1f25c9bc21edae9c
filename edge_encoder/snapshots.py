"""Scene snapshots: a small picture of the person in their surroundings, for cameras that opt in.

The face box expanded SCALE times about its centre (clipped to the frame), downscaled so its longest
side is at most MAX_SIDE pixels, JPEG. It is kept at the edge with the face's enhancement layers (the
same row of the enhancement store: the same bounds, eviction, retention and erasure) and leaves the
edge only on FetchSnapshot, when a person with the full-pixel scope asks the reconstructor for it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

SCALE = 3.0  # the face box, this many times wider and taller: head, shoulders and what is around them
MAX_SIDE = 480  # pixels, longest side
QUALITY = 80  # JPEG quality: median 17 KB at 480 px on LFW frames upscaled 3x (README)


def scene_snapshot(rgb: np.ndarray, box: tuple[float, float, float, float], scale: float = SCALE,
                   max_side: int = MAX_SIDE, quality: int = QUALITY) -> bytes:
    """JPEG of the region around `box` (x1, y1, x2, y2 in frame pixels)."""
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
    left, top = max(0, int(cx - half_w)), max(0, int(cy - half_h))
    right, bottom = min(width, int(np.ceil(cx + half_w))), min(height, int(np.ceil(cy + half_h)))
    region = Image.fromarray(np.ascontiguousarray(rgb[top:max(bottom, top + 1), left:max(right, left + 1)]))
    region.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # only ever shrinks; keeps the aspect
    buffer = io.BytesIO()
    region.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
