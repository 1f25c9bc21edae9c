"""Base layer: the face descriptor, quantised and entropy coded; decodes alone to a descriptor.

Two families share one interface:
- `ScalarBaseLayer`: every dimension quantised with one step and coded with a frozen discretised
  Gaussian (the walking-skeleton baseline; nothing learned but the table's scale).
- `LearnedBaseLayer`: a learned analysis transform to a small latent, CompressAI EntropyBottleneck
  tables frozen at export, and a synthesis transform back to the descriptor space (compared with the
  scalar baseline, bytes against accuracy, in bench/results/rate_accuracy.json).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from facecodec.codec.arithmetic import ArithmeticCoder
from facecodec.codec.entropy import CdfTables, EntropyDecodeError, RansCoder
from facecodec.frontend.describe import DESCRIPTOR_DIM, normalise


class BaseLayerError(ValueError):
    """A base-layer payload does not decode to a valid descriptor."""


class BaseLayerCodec(Protocol):
    name: str

    def encode(self, descriptor: np.ndarray) -> bytes: ...

    def decode(self, payload: bytes) -> np.ndarray: ...


def _check_descriptor(descriptor: np.ndarray) -> np.ndarray:
    d = np.asarray(descriptor, np.float32).reshape(-1)
    if d.shape != (DESCRIPTOR_DIM,) or not np.isfinite(d).all():
        raise ValueError(f"descriptor must be {DESCRIPTOR_DIM} finite floats")
    return normalise(d)


class ScalarBaseLayer:
    """Unit-norm descriptor / step, rounded, rANS-coded with one frozen Gaussian table."""

    def __init__(self, path: Path) -> None:
        with np.load(path) as z:
            self.step = float(z["step"])
            self.tables = CdfTables(z["cdfs"], z["lengths"], z["offsets"])
        self.name = f"scalar(step=1/{round(1 / self.step)})"
        self.coder = RansCoder(self.tables)
        self.indexes = np.zeros(DESCRIPTOR_DIM, np.int64)

    def encode(self, descriptor: np.ndarray) -> bytes:
        symbols = np.round(_check_descriptor(descriptor) / self.step).astype(np.int64)
        return self.coder.encode(symbols, self.indexes)

    def decode(self, payload: bytes) -> np.ndarray:
        try:
            symbols = self.coder.decode(payload, self.indexes)
        except EntropyDecodeError as exc:
            raise BaseLayerError(str(exc)) from exc
        return _finish(symbols.astype(np.float32) * self.step)

    @staticmethod
    def export(path: Path, step: float, sigma: float) -> None:
        """Freeze the discretised Gaussian N(0, sigma) over steps of `step` into integer tables."""
        from scipy.stats import norm

        half = int(np.ceil(6 * sigma / step))
        k = np.arange(-half, half + 1)
        pmf = norm.cdf((k + 0.5) * step, scale=sigma) - norm.cdf((k - 0.5) * step, scale=sigma)
        tables = CdfTables.from_pmfs([pmf], [max(1.0 - pmf.sum(), 1e-9)], [-half])
        np.savez(path, step=step, sigma=sigma, cdfs=tables.cdfs, lengths=tables.lengths, offsets=tables.offsets)


def _finish(descriptor: np.ndarray) -> np.ndarray:
    if not np.isfinite(descriptor).all() or np.linalg.norm(descriptor) < 1e-6:
        raise BaseLayerError("base layer decodes to a degenerate descriptor")
    return normalise(descriptor.reshape(-1))


class LearnedBaseLayer:
    """descriptor -> analysis (onnxruntime) -> round(y - median) -> entropy coder; the reverse to decode.

    `coder`: "arithmetic" (`facecodec.codec.arithmetic`: termination <= 1 byte) or "rans"
    (CompressAI's coder, ~6 bytes more per face; the containers of model ids 2 and 4 use it). Both
    code the same symbols with the same tables, so descriptors decode identically.
    """

    def __init__(self, path: Path, coder: Literal["rans", "arithmetic"] = "arithmetic") -> None:
        from facecodec.frontend.runtime import open_session

        with np.load(path) as z:
            self.medians = z["medians"].astype(np.float32)
            self.tables = CdfTables(z["cdfs"], z["lengths"], z["offsets"])
            self.analysis = open_session(z["analysis_onnx"].tobytes())
            self.synthesis = open_session(z["synthesis_onnx"].tobytes())
            self.name = str(z["name"])
        self.coder = ArithmeticCoder(self.tables, escapes=False) if coder == "arithmetic" else RansCoder(self.tables)
        self.indexes = np.arange(len(self.medians), dtype=np.int64)

    def latent(self, descriptor: np.ndarray) -> np.ndarray:
        x = _check_descriptor(descriptor)[None]
        return self.analysis.run(None, {"descriptor": x})[0][0]

    def encode(self, descriptor: np.ndarray) -> bytes:
        symbols = np.round(self.latent(descriptor) - self.medians).astype(np.int64)
        if isinstance(self.coder, ArithmeticCoder):  # beyond the tables' range (tail mass ~1e-9): clamp
            symbols = self.coder.clamp(symbols, self.indexes)
        return self.coder.encode(symbols, self.indexes)

    def decode_symbols(self, payload: bytes) -> np.ndarray:
        try:
            return self.coder.decode(payload, self.indexes)
        except EntropyDecodeError as exc:
            raise BaseLayerError(str(exc)) from exc

    def decode(self, payload: bytes) -> np.ndarray:
        symbols = self.decode_symbols(payload)
        # Garbage payloads can decode to absurd escape values; refuse them instead of feeding the net.
        if np.abs(symbols).max(initial=0) > 1 << 12:
            raise BaseLayerError("base layer symbols out of range")
        y_hat = (symbols.astype(np.float32) + self.medians)[None]
        return _finish(self.synthesis.run(None, {"latent": y_hat})[0][0])

