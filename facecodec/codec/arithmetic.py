"""Exact arithmetic coding for short payloads: the base layer's termination costs at most one byte.

CompressAI's rANS coder flushes a 64-bit state and writes 32-bit words: ~8 bytes of every payload
carry no information, a quarter of a 32-byte base layer and most of an 8-byte one. A base layer is
128 symbols, so this coder keeps the whole interval exactly, in Python integers: coding symbol s
with table frequencies [c_lo, c_hi) of 2^16 maps [L, L + R) / 2^T to
[L 2^16 + R c_lo, L 2^16 + R c_hi) / 2^(T+16). The payload is the shortest byte string B (at least
one byte) whose value B / 2^(8n) lies in the final interval: at most 8 bits beyond -log2 P(symbols),
and it never ends in a zero byte. No renormalisation, no carries, no state to flush.

The tables are CompressAI's integer CDFs (`CdfTables`), with its alphabet: a symbol v = s - offset
in [0, length - 2) is coded directly, anything else as the table's last (escape) entry followed by
the signed value s itself, Elias-gamma coded in equiprobable bits. With `escapes=False` the escape
is refused both ways (callers `clamp` first), so whatever a payload decodes to is symbols the tables
model: bounded values, never long escape runs.

Payloads are canonical, as with `RansCoder`: decoding re-encodes and requires the same bytes. Unlike
rANS, whose ~6 bytes of flush slack reject almost all garbage, an exact code has no spare bits: most
short strings are some symbols' stream, so corruption is caught by the container's CRC, not here.
Integers grow to ~16 bits per symbol, so this
is for payloads of a few hundred symbols (the enhancement layers keep rANS).
"""

from __future__ import annotations

import bisect

import numpy as np

from facecodec.codec.entropy import MAX_SYMBOL, PRECISION, CdfTables, EntropyDecodeError

MAX_SYMBOLS = 1024  # integer sizes (and time) grow with the symbol count; base layers have 128
MAX_ESCAPE_BITS = 2 * 17  # Elias-gamma of zigzag(s) for |s| <= MAX_SYMBOL


def _zigzag(s: int) -> int:
    return 2 * s if s >= 0 else -2 * s - 1


def _unzigzag(u: int) -> int:
    return u // 2 if u % 2 == 0 else -(u + 1) // 2


class _Interval:
    """[low, low + width) / 2^bits, narrowed one symbol or bit at a time."""

    def __init__(self) -> None:
        self.low, self.width, self.bits = 0, 1, 0

    def narrow(self, c_lo: int, c_hi: int) -> None:
        self.low = (self.low << PRECISION) + self.width * c_lo
        self.width *= c_hi - c_lo
        self.bits += PRECISION

    def narrow_bit(self, bit: int) -> None:
        self.low = (self.low << 1) + self.width * bit
        self.bits += 1


class ArithmeticCoder:
    """Encode/decode integer symbols, each with the index of the CDF table that models it."""

    def __init__(self, tables: CdfTables, escapes: bool = True) -> None:
        self._cdfs, self._lengths, self._offsets = tables.as_lists()
        self.escapes = escapes
        self._low = np.asarray(self._offsets, np.int64)
        self._high = self._low + np.asarray(self._lengths, np.int64) - 3  # last directly coded symbol

    def clamp(self, symbols: np.ndarray, indexes: np.ndarray) -> np.ndarray:
        """Symbols moved into their tables' direct range (what `escapes=False` can code)."""
        indexes = np.asarray(indexes, np.int64)
        return np.clip(np.asarray(symbols, np.int64), self._low[indexes], self._high[indexes])

    # -- encoding ------------------------------------------------------------------------------------

    def encode(self, symbols: np.ndarray, indexes: np.ndarray) -> bytes:
        symbols, indexes = self._check(symbols, indexes)
        interval = _Interval()
        for s, i in zip(symbols, indexes):
            cdf, escape = self._cdfs[i], self._lengths[i] - 2
            v = s - self._offsets[i]
            if 0 <= v < escape:
                interval.narrow(cdf[v], cdf[v + 1])
                continue
            if not self.escapes:
                raise ValueError(f"symbol {s} outside table {i}'s range (clamp first)")
            interval.narrow(cdf[escape], cdf[escape + 1])
            u = _zigzag(s) + 1  # Elias gamma codes u >= 1: (len - 1) zeros, then u's bits
            for bit in [0] * (u.bit_length() - 1) + [int(b) for b in bin(u)[2:]]:
                interval.narrow_bit(bit)
        return self._terminate(interval)

    @staticmethod
    def _terminate(interval: _Interval) -> bytes:
        low, high, bits = interval.low, interval.low + interval.width, interval.bits
        n = 1
        while True:  # smallest B with B / 2^(8n) in [low, high) / 2^bits, for the fewest bytes n
            shift = 8 * n - bits
            if shift >= 0:
                value = low << shift
                if value < high << shift:
                    return value.to_bytes(n, "big")
            else:
                value = -((-low) >> -shift)  # ceil(low / 2^-shift)
                if value << -shift < high:
                    return value.to_bytes(n, "big")
            n += 1

    # -- decoding ------------------------------------------------------------------------------------

    def decode(self, payload: bytes, indexes: np.ndarray) -> np.ndarray:
        indexes = np.asarray(indexes, np.int64).ravel()
        if not payload:
            raise EntropyDecodeError("entropy-coded payload is empty")
        if len(indexes) > MAX_SYMBOLS:
            raise ValueError(f"at most {MAX_SYMBOLS} symbols per payload")
        value, scale = int.from_bytes(payload, "big"), 8 * len(payload)
        interval = _Interval()
        out = []

        def position(total: int) -> int:
            # floor(((value / 2^scale) - low / 2^bits) / (width / 2^bits) * total), exactly
            num = (value << interval.bits) - (interval.low << scale)
            return (num * total) // (interval.width << scale)

        for i in indexes.tolist():
            cdf, escape = self._cdfs[i], self._lengths[i] - 2
            target = position(1 << PRECISION)
            v = bisect.bisect_right(cdf, target) - 1
            if not 0 <= v <= escape or (v == escape and not self.escapes):
                raise EntropyDecodeError("payload is not a valid stream for this model")
            interval.narrow(cdf[v], cdf[v + 1])
            if v < escape:
                out.append(v + self._offsets[i])
                continue
            zeros = 0
            while self._bit(interval, position) == 0:
                zeros += 1
                if zeros > MAX_ESCAPE_BITS:
                    raise EntropyDecodeError("escape value out of range")
            u = 1
            for _ in range(zeros):
                u = (u << 1) | self._bit(interval, position)
            out.append(_unzigzag(u - 1))
        symbols = np.asarray(out, np.int64)
        if symbols.size and np.abs(symbols).max() > MAX_SYMBOL:
            raise EntropyDecodeError("payload decodes to out-of-range symbols")
        # Any bytes decode to something; a genuine payload is exactly the re-encoding of its symbols,
        # which refuses trailing zeros and strings longer than their interval needs. It cannot refuse
        # much else: with no slack left, almost every string shorter than a typical payload is the
        # exact stream of some symbols. Integrity is the container's job (CRC-32 over the base layer).
        if self.encode(symbols, indexes) != payload:
            raise EntropyDecodeError("payload is not the canonical stream of its symbols")
        return symbols

    @staticmethod
    def _bit(interval: _Interval, position) -> int:  # type: ignore[no-untyped-def]
        bit = int(position(2) >= 1)
        interval.narrow_bit(bit)
        return bit

    def _check(self, symbols: np.ndarray, indexes: np.ndarray) -> tuple[list[int], list[int]]:
        symbols = np.asarray(symbols, np.int64).ravel()
        indexes = np.asarray(indexes, np.int64).ravel()
        if symbols.shape != indexes.shape:
            raise ValueError("one table index per symbol")
        if len(symbols) > MAX_SYMBOLS:
            raise ValueError(f"at most {MAX_SYMBOLS} symbols per payload")
        if symbols.size and np.abs(symbols).max() > MAX_SYMBOL:
            raise ValueError(f"symbol magnitude above {MAX_SYMBOL}")
        return symbols.tolist(), indexes.tolist()
