"""Fixed-table entropy coding with CompressAI's rANS coder.

Every entropy model we use (EntropyBottleneck for the learned base layer, a discretised Gaussian
for the baseline) is frozen into integer CDF tables at export time. Encoder and decoder then agree
bit for bit on any machine and runtime: the tables are integers, and the symbols are integers.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

PRECISION = 16  # CompressAI's default entropy_coder_precision
MAX_SYMBOL = 1 << 15  # far beyond any table here (|offset| + length < 300)


@functools.cache
def compressai_ans() -> ModuleType:
    """CompressAI's rANS extension (`compressai.ans`), loaded from its file without running
    `compressai/__init__.py`, which imports torch and every CompressAI model: a service that only codes
    bitstreams (the edge, the analyzer) would otherwise carry ~800 MB of torch for a coder it loads in
    12 MB. The extension itself links nothing of torch."""
    spec = importlib.util.find_spec("compressai")
    if spec is None or spec.origin is None:
        raise ImportError("compressai is not installed")
    found = sorted(Path(spec.origin).parent.glob("ans.*.so")) + sorted(Path(spec.origin).parent.glob("ans.*.pyd"))
    if not found:  # another layout: the ordinary import
        import compressai.ans

        return compressai.ans
    loader = importlib.machinery.ExtensionFileLoader("compressai.ans", str(found[0]))
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("compressai.ans", found[0],
                                                                                    loader=loader))
    loader.exec_module(module)
    # Loading put it in sys.modules without its package; drop that entry, so that a later `import
    # compressai` imports it the ordinary way (Python hands back this same module) and binds
    # `compressai.ans` on the package.
    sys.modules.pop("compressai.ans", None)
    return module


class EntropyDecodeError(ValueError):
    """The payload is not a valid rANS stream for these tables."""


@dataclass(frozen=True)
class CdfTables:
    cdfs: np.ndarray  # int32 [n_tables, max_len]
    lengths: np.ndarray  # int32 [n_tables]
    offsets: np.ndarray  # int32 [n_tables]

    def as_lists(self) -> tuple[list[list[int]], list[int], list[int]]:
        return (
            [row[: int(n)].tolist() for row, n in zip(self.cdfs, self.lengths)],
            self.lengths.astype(np.int64).tolist(),
            self.offsets.astype(np.int64).tolist(),
        )

    @classmethod
    def from_pmfs(cls, pmfs: list[np.ndarray], tail_masses: list[float], offsets: list[int]) -> CdfTables:
        """Quantise probability mass functions exactly as CompressAI's EntropyModel does."""
        from compressai._CXX import pmf_to_quantized_cdf

        rows = [pmf_to_quantized_cdf([*map(float, p), float(t)], PRECISION) for p, t in zip(pmfs, tail_masses)]
        width = max(len(r) for r in rows)
        cdfs = np.zeros((len(rows), width), np.int32)
        for i, r in enumerate(rows):
            cdfs[i, : len(r)] = r
        return cls(cdfs, np.array([len(r) for r in rows], np.int32), np.array(offsets, np.int32))


class RansCoder:
    """Encode/decode integer symbols, each with the index of the CDF table that models it."""

    def __init__(self, tables: CdfTables) -> None:
        ans = compressai_ans()
        self._encoder, self._decoder = ans.RansEncoder(), ans.RansDecoder()
        self._cdfs, self._lengths, self._offsets = tables.as_lists()

    def encode(self, symbols: np.ndarray, indexes: np.ndarray) -> bytes:
        symbols = symbols.astype(np.int64).ravel()
        if symbols.size and np.abs(symbols).max() > MAX_SYMBOL:
            # CompressAI's escape coding loops forever on values near 2**31; nothing real gets here.
            raise ValueError(f"symbol magnitude above {MAX_SYMBOL}")
        return self._encoder.encode_with_indexes(
            symbols.tolist(),
            indexes.astype(np.int64).ravel().tolist(),
            self._cdfs,
            self._lengths,
            self._offsets,
        )

    def decode(self, payload: bytes, indexes: np.ndarray) -> np.ndarray:
        if not payload or len(payload) % 4:
            # The coder writes whole 32-bit words; anything else was not written by it.
            raise EntropyDecodeError("entropy-coded payload must be a non-empty multiple of 4 bytes")
        # The C++ decoder reads words without a bounds check: at most one renormalisation word per
        # symbol plus escape words. Zero padding for every symbol keeps garbage input inside our buffer
        # and deterministic; zeros also end escape runs.
        padded = payload + b"\x00" * (4 * (indexes.size + 4))
        try:
            symbols = self._decoder.decode_with_indexes(
                padded, indexes.astype(np.int64).ravel().tolist(), self._cdfs, self._lengths, self._offsets
            )
        except (RuntimeError, ValueError, TypeError) as exc:
            raise EntropyDecodeError(f"undecodable payload: {exc}") from exc
        symbols = np.asarray(symbols, np.int64).reshape(indexes.shape)
        if symbols.size and np.abs(symbols).max() > MAX_SYMBOL:
            raise EntropyDecodeError("payload decodes to out-of-range symbols")
        # rANS happily decodes any bytes. Encoding is deterministic, so a genuine payload is exactly
        # the re-encoding of its symbols: this rejects garbage, truncation and trailing bytes.
        if self.encode(symbols, indexes) != payload:
            raise EntropyDecodeError("payload is not a valid rANS stream for this model")
        return symbols
