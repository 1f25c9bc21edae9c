"""Exact integer inference for the hyper-synthesis, so entropy-coder indexes never depend on floats.

The enhancement layer's Gaussian scales come from a small network (`ResidualCodec.h_s`). If encoder
and decoder computed it in floating point, a last-bit difference between machines or runtimes could
move one scale across a table boundary and desynchronise the rANS decoder (Ballé et al., "Integer
networks for data compression", 2019). Serving therefore runs `h_s` in fixed point with numpy int64:
weights rounded to 2^-WEIGHT_BITS, activations to 2^-FRACTION_BITS, floor shifts after each product.
Integer arithmetic is exact everywhere, so encoder and decoder derive identical indexes. The result
differs from the float network by ~1e-4 relative, which only changes the rate negligibly.
"""

from __future__ import annotations

import numpy as np

FRACTION_BITS = 16
WEIGHT_BITS = 12
EXACT_FLOAT = 2**53


class IntegerHyperSynthesis:
    """z_hat (as integer symbols + fixed-point medians) -> fixed-point scales, bit-exact."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.layers = []
        i = 0
        while f"h_s{i}_weight" in weights:
            self.layers.append((weights[f"h_s{i}_weight"].astype(np.int64), weights[f"h_s{i}_bias"].astype(np.int64)))
            i += 1

    @staticmethod
    def _conv3x3(a: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        c, h, wd = a.shape
        padded = np.pad(a, ((0, 0), (1, 1), (1, 1)))
        # im2col: (c*9, h*w), ordered like the weight's (cin, ky, kx).
        cols = np.stack([padded[:, dy : dy + h, dx : dx + wd] for dy in range(3) for dx in range(3)], axis=1)
        w2, cols2 = w.reshape(w.shape[0], -1), cols.reshape(c * 9, h * wd)
        if np.abs(a).max(initial=0) * np.abs(w2).sum(1).max(initial=0) < EXACT_FLOAT:
            # Every product and partial sum is an integer below 2**53, which float64 represents exactly
            # in any summation order: BLAS gives the exact integer result, ~100x faster than int64 matmul.
            acc = np.rint(w2.astype(np.float64) @ cols2.astype(np.float64)).astype(np.int64)
        else:
            acc = w2 @ cols2  # int64 matmul: exact, slow
        acc = acc + (b[:, None] << WEIGHT_BITS)
        return (acc >> WEIGHT_BITS).reshape(w.shape[0], h, wd)  # floor: the same on every machine

    def __call__(self, z_fixed: np.ndarray, size: int) -> np.ndarray:
        """z_fixed: C x h x w int64 in units of 2^-FRACTION_BITS -> M x size x size, same units."""
        a = z_fixed.repeat(2, axis=1).repeat(2, axis=2)  # nearest x2
        for w, b in self.layers:
            a = np.maximum(self._conv3x3(a, w, b), 0)  # every conv in h_s is followed by ReLU
        return a[:, :size, :size]


def scale_thresholds(scale_table: np.ndarray) -> np.ndarray:
    """Integer bounds for GaussianConditional.build_indexes: index = #bounds strictly below the scale."""
    return np.floor(scale_table[:-1].astype(np.float64) * 2**FRACTION_BITS).astype(np.int64)


def scale_indexes(scales_fixed: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Like CompressAI (index i: the first table scale >= the predicted scale), in integers."""
    return np.searchsorted(thresholds, scales_fixed, side="left").astype(np.int32)

