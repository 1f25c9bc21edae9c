"""Enhancement layers: the residual between the real crop and the base-layer prediction.

Baseline design, one model for every quality: successive refinement with WebP. Level 1 codes
`crop - prediction`; level k codes what is still wrong after levels 1..k-1, at a higher WebP quality.
So the layers nest: decoding up to level k needs layers 1..k and costs exactly their bytes.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from facecodec.bitstream import EnhancementLayer

DEFAULT_QUALITIES = (10, 40, 75, 95)


class EnhancementLayerError(ValueError):
    """Enhancement layers that cannot be decoded (missing level, corrupt payload, wrong size)."""


def _to_residual_image(residual: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(residual + 128, 0, 255).astype(np.uint8))


class WebPResidualCodec:
    name = "webp-residual"

    def __init__(self, qualities: tuple[int, ...] = DEFAULT_QUALITIES) -> None:
        self.qualities = qualities

    @property
    def levels(self) -> int:
        return len(self.qualities)

    def layers_needed(self, level: int) -> tuple[int, ...]:
        return tuple(range(1, level + 1))

    def _code(self, residual: np.ndarray, quality: int) -> bytes:
        buffer = io.BytesIO()
        _to_residual_image(residual).save(buffer, format="WEBP", quality=quality, method=6)
        return buffer.getvalue()

    def _decode_one(self, payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
        try:
            with Image.open(io.BytesIO(payload)) as image:
                if image.format != "WEBP":
                    raise EnhancementLayerError("enhancement payload is not WebP")
                # The header's size, checked before a pixel is decoded: a payload declaring 16383 x 16383
                # would otherwise cost ~800 MB to find out it is the wrong size.
                if image.size != (shape[1], shape[0]):
                    raise EnhancementLayerError(f"enhancement layer declares {image.size[0]}x{image.size[1]} "
                                                f"pixels, expected {shape[1]}x{shape[0]}")
                residual = np.asarray(image.convert("RGB"), np.int16) - 128
        except (OSError, ValueError) as exc:
            raise EnhancementLayerError(f"undecodable enhancement layer: {exc}") from exc
        if residual.shape != shape:
            raise EnhancementLayerError(f"enhancement layer is {residual.shape}, expected {shape}")
        return residual

    def encode(self, crop: np.ndarray, prediction: np.ndarray, levels: int | None = None) -> list[EnhancementLayer]:
        levels = self.levels if levels is None else levels
        current = prediction.astype(np.int16)
        layers = []
        for level, quality in enumerate(self.qualities[:levels], start=1):
            payload = self._code(crop.astype(np.int16) - current, quality)
            # Refine from what the decoder will have, not from the exact residual, so errors don't pile up.
            current = np.clip(current + self._decode_one(payload, crop.shape), 0, 255)
            layers.append(EnhancementLayer(level, payload))
        return layers

    def encode_levels(
        self, crop: np.ndarray, prediction: np.ndarray, wanted: tuple[int, ...]
    ) -> list[EnhancementLayer]:
        """Layers 1..max(`wanted`): each refinement is coded against the ones below it."""
        if any(not 1 <= level <= self.levels for level in wanted):
            raise EnhancementLayerError(f"enhancement levels {wanted} outside 1..{self.levels}")
        return self.encode(crop, prediction, max(wanted))

    def decode(self, prediction: np.ndarray, layers: tuple[EnhancementLayer, ...], level: int) -> np.ndarray:
        by_level = {layer.level: layer for layer in layers}
        missing = [k for k in range(1, level + 1) if k not in by_level]
        if missing:
            raise EnhancementLayerError(f"enhancement level(s) {missing} missing; have {sorted(by_level)}")
        current = prediction.astype(np.int16)
        for k in range(1, level + 1):
            current = np.clip(current + self._decode_one(by_level[k].payload, prediction.shape), 0, 255)
        return current.astype(np.uint8)
