"""Camera-like degradations of aligned crops, for training coders on faces unlike LFW's.

LFW's deep-funneled photos are clean, already-JPEG'd 250x250 portraits; camera faces are often
upscaled from few pixels, out of focus, noisy, colour-cast and re-compressed. `degrade` applies a
random chain of those, each with probability `p`, so a coder trained on clean faces plus degraded
copies sees both. The copies are made once, before training: the decoder's side information (the
generated face) must come from the degraded face's own descriptor, as it would in service.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def _low_resolution(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = crop.shape[0]
    small = max(16, int(side * rng.uniform(0.3, 0.8)))
    down = cv2.resize(crop, (small, small), interpolation=cv2.INTER_AREA)
    return cv2.resize(down, (side, side), interpolation=cv2.INTER_LINEAR)


def _blur(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cv2.GaussianBlur(crop, (0, 0), sigmaX=rng.uniform(0.5, 1.6))


def _colour(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = crop.astype(np.float32) / 255.0
    x = x ** rng.uniform(0.75, 1.3) * rng.uniform(0.85, 1.15, size=3) + rng.uniform(-0.06, 0.06)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * rng.uniform(0.6, 1.3)  # saturation
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _noise(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = crop.astype(np.float32) + rng.normal(0.0, rng.uniform(1.0, 6.0), crop.shape)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def _jpeg(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="JPEG", quality=int(rng.integers(30, 91)))
    return np.asarray(Image.open(buffer).convert("RGB"))


# In the order a camera applies them: optics and sampling, sensor, ISP colour, compression.
DEGRADATIONS = (_low_resolution, _blur, _noise, _colour, _jpeg)


def degrade(crop: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """One degraded copy of an HxWx3 uint8 crop; at least one degradation is always applied."""
    chosen = [d for d in DEGRADATIONS if rng.random() < p] or [DEGRADATIONS[rng.integers(len(DEGRADATIONS))]]
    for degradation in chosen:
        crop = degradation(crop, rng)
    return np.ascontiguousarray(crop)


def degraded_copies(crops: np.ndarray, seed: int = 0, p: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([degrade(crop, rng, p) for crop in crops])
