"""Learned enhancement layer: a conditional transform coder served with onnxruntime + rANS.

One model codes every quality (gain units, see `facecodec.models.residual_codec`); each level is a
self-contained layer, so a viewer asking for quality N fetches layer N alone. Layer payload:

    u16 big-endian length of the hyper-latent stream | hyper-latent rANS stream | latent rANS stream

The hyper-latent uses frozen per-channel tables (EntropyBottleneck), the latent frozen Gaussian tables
indexed by the integer hyper-synthesis (`facecodec.codec.integer_net`), so the decoder derives exactly
the encoder's indexes on any machine. Only the image synthesis runs in floating point, where a last-bit
difference changes a pixel value by far less than one grey level and cannot desynchronise anything.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from facecodec.bitstream import EnhancementLayer
from facecodec.codec.compact_onnx import restore
from facecodec.codec.enhancement_layer import EnhancementLayerError
from facecodec.codec.entropy import CdfTables, EntropyDecodeError, RansCoder
from facecodec.codec.integer_net import FRACTION_BITS, IntegerHyperSynthesis, scale_indexes, scale_thresholds

LATENT_SIZE = 7


class LearnedResidualCodec:
    name = "learned-residual"

    def __init__(self, path: Path) -> None:
        from facecodec.frontend.runtime import open_session

        with np.load(path) as z:
            self.analysis = open_session(restore(z, "analysis"), name=f"{path.stem}.analysis")
            self.hyper_analysis = open_session(restore(z, "hyper_analysis"), name=f"{path.stem}.hyper_analysis")
            self.synthesis = open_session(restore(z, "synthesis"), name=f"{path.stem}.synthesis")
            self.gain, self.inverse_gain = z["gain"].astype(np.float32), z["inverse_gain"].astype(np.float32)
            self.h_s = IntegerHyperSynthesis({k: z[k] for k in z.files if k.startswith("h_s")})
            self.z_medians = z["z_medians"].astype(np.float32)
            self.z_coder = RansCoder(CdfTables(z["z_cdfs"], z["z_lengths"], z["z_offsets"]))
            self.y_coder = RansCoder(CdfTables(z["y_cdfs"], z["y_lengths"], z["y_offsets"]))
            self.thresholds = scale_thresholds(z["scale_table"])
            self.z_size = int(z["z_size"])
            self.qualities = tuple(float(x) for x in z["lmbdas"])  # rate-distortion lambda of each level
        channels = len(self.z_medians)
        self.z_indexes = np.broadcast_to(
            np.arange(channels, dtype=np.int32)[:, None, None], (channels, self.z_size, self.z_size)
        )
        self.z_medians_fixed = np.round(self.z_medians.astype(np.float64) * 2**FRACTION_BITS).astype(np.int64)

    @property
    def levels(self) -> int:
        return len(self.gain)

    def layers_needed(self, level: int) -> tuple[int, ...]:
        return (level,) if level else ()

    @staticmethod
    def _image(pixels: np.ndarray) -> np.ndarray:
        return (pixels.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]

    def _run(self, session, **inputs: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
        wanted = {i.name for i in session.get_inputs()}  # the single-layer graph has no x_gen input
        return session.run(None, {k: v for k, v in inputs.items() if k in wanted})[0][0]

    def _y_indexes(self, z_symbols: np.ndarray) -> np.ndarray:
        z_fixed = (z_symbols << FRACTION_BITS) + self.z_medians_fixed[:, None, None]
        return scale_indexes(self.h_s(z_fixed, LATENT_SIZE), self.thresholds)

    def encode(self, crop: np.ndarray, prediction: np.ndarray, levels: int | None = None) -> list[EnhancementLayer]:
        """Layers 1..`levels` (default: all)."""
        return self.encode_levels(crop, prediction, tuple(range(1, (self.levels if levels is None else levels) + 1)))

    def encode_levels(
        self, crop: np.ndarray, prediction: np.ndarray, wanted: tuple[int, ...]
    ) -> list[EnhancementLayer]:
        """The layers of the `wanted` levels only: each is self-contained, so one level costs the analysis
        transform once plus that level's hyper-latent and entropy coding."""
        if any(not 1 <= level <= self.levels for level in wanted):
            raise EnhancementLayerError(f"enhancement levels {wanted} outside 1..{self.levels}")
        y = self._run(self.analysis, x=self._image(crop), x_gen=self._image(prediction))
        layers = []
        for level in sorted(set(wanted)):
            y_q = y * self.gain[level - 1][:, None, None]
            z = self._run(self.hyper_analysis, y=y_q[None])
            z_symbols = np.round(z - self.z_medians[:, None, None]).astype(np.int64)
            z_bytes = self.z_coder.encode(z_symbols, self.z_indexes)
            y_bytes = self.y_coder.encode(np.round(y_q).astype(np.int64), self._y_indexes(z_symbols))
            layers.append(EnhancementLayer(level, struct.pack(">H", len(z_bytes)) + z_bytes + y_bytes))
        return layers

    def decode(self, prediction: np.ndarray, layers: tuple[EnhancementLayer, ...], level: int) -> np.ndarray:
        if not 1 <= level <= self.levels:
            raise EnhancementLayerError(f"enhancement level {level} outside 1..{self.levels}")
        by_level = {layer.level: layer for layer in layers}
        if level not in by_level:
            raise EnhancementLayerError(f"enhancement level {level} missing; have {sorted(by_level)}")
        payload = by_level[level].payload
        if len(payload) < 2:
            raise EnhancementLayerError("enhancement layer too short")
        (z_length,) = struct.unpack(">H", payload[:2])
        z_bytes, y_bytes = payload[2 : 2 + z_length], payload[2 + z_length :]
        try:
            z_symbols = self.z_coder.decode(z_bytes, self.z_indexes)
            y_symbols = self.y_coder.decode(y_bytes, self._y_indexes(z_symbols))
        except EntropyDecodeError as exc:
            raise EnhancementLayerError(f"undecodable enhancement layer: {exc}") from exc
        y_hat = y_symbols.astype(np.float32) * self.inverse_gain[level - 1][:, None, None]
        x_hat = self._run(self.synthesis, y_hat=y_hat[None], x_gen=self._image(prediction))
        return np.clip(np.round(x_hat.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
