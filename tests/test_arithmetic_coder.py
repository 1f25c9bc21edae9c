"""The base layer's arithmetic coder: exact round trips, <= 1 byte of termination, canonical payloads."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facecodec.codec.arithmetic import ArithmeticCoder
from facecodec.codec.entropy import PRECISION, CdfTables, EntropyDecodeError, RansCoder


def tables() -> CdfTables:
    """Three tables of the shapes the base layer has: peaked, flat, skewed, each with an escape tail."""
    pmfs = [np.array([0.01, 0.04, 0.9, 0.04, 0.01]), np.full(9, 1 / 9 - 1e-4), np.array([0.7, 0.2, 0.08])]
    return CdfTables.from_pmfs([p / p.sum() * 0.999 for p in pmfs], [0.001, 0.001, 0.001], [-2, -4, 0])


TABLES = tables()
CODER = ArithmeticCoder(TABLES)
symbol_lists = st.lists(st.tuples(st.integers(0, 2), st.integers(-6, 8) | st.integers(-32_768, 32_768)),
                        min_size=1, max_size=200)


def ideal_bits(symbols: list[int], indexes: list[int]) -> float:
    """-log2 P of the symbols under the tables, escapes with their Elias-gamma bits."""
    cdfs, lengths, offsets = TABLES.as_lists()
    bits = 0.0
    for s, i in zip(symbols, indexes):
        v, escape = s - offsets[i], lengths[i] - 2
        k = v if 0 <= v < escape else escape
        bits += PRECISION - math.log2(cdfs[i][k + 1] - cdfs[i][k])
        if k == escape:
            u = (2 * s if s >= 0 else -2 * s - 1) + 1
            bits += 2 * u.bit_length() - 1
    return bits


@settings(max_examples=300, deadline=None)
@given(symbol_lists)
def test_round_trip_is_exact_and_termination_costs_at_most_one_byte(pairs: list[tuple[int, int]]) -> None:
    indexes, symbols = (np.array(x, np.int64) for x in zip(*pairs))
    payload = CODER.encode(symbols, indexes)
    assert np.array_equal(CODER.decode(payload, indexes), symbols)
    assert len(payload) <= max(1, math.ceil(ideal_bits(symbols.tolist(), indexes.tolist()) / 8) + 1)
    assert payload[-1] != 0 or payload == b"\x00"  # the shortest value never ends in a zero byte


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=40), st.lists(st.integers(0, 2), min_size=1, max_size=64))
def test_any_bytes_either_fail_cleanly_or_are_the_canonical_stream(data: bytes, indexes: list[int]) -> None:
    idx = np.array(indexes, np.int64)
    try:
        symbols = CODER.decode(data, idx)
    except EntropyDecodeError:
        return
    assert CODER.encode(symbols, idx) == data


def test_tampered_payloads_are_refused_or_are_another_canonical_stream() -> None:
    """A code this compact has no spare bits: a cut or extended payload may be the exact stream of other
    symbols (the container's CRC is what detects tampering). It must never decode to the original
    symbols, and zero padding, which no canonical stream ends in, is always refused."""
    rng = np.random.default_rng(1)
    indexes = rng.integers(0, 3, 128)
    symbols = np.array([rng.integers(-2, 3) if i != 2 else rng.integers(0, 3) for i in indexes])
    payload = CODER.encode(symbols, indexes)
    with pytest.raises(EntropyDecodeError):
        CODER.decode(payload + b"\x00", indexes)
    for bad in (payload[:-1], payload + b"\x01", b"\x00" + payload, payload[:-1] + bytes([payload[-1] ^ 1])):
        try:
            decoded = CODER.decode(bad, indexes)
        except EntropyDecodeError:
            continue
        assert not np.array_equal(decoded, symbols) and CODER.encode(decoded, indexes) == bad


def test_it_decodes_the_symbols_rans_codes_in_fewer_bytes() -> None:
    rng = np.random.default_rng(2)
    indexes = rng.integers(0, 3, 128)
    symbols = np.array([rng.integers(-2, 3) if i == 0 else rng.integers(0, 3) for i in indexes])
    rans = RansCoder(TABLES).encode(symbols, indexes)
    payload = CODER.encode(symbols, indexes)
    assert len(payload) <= len(rans) - 4
    assert np.array_equal(CODER.decode(payload, indexes), RansCoder(TABLES).decode(rans, indexes))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="one table index per symbol"):
        CODER.encode(np.zeros(3, np.int64), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="magnitude"):
        CODER.encode(np.array([1 << 20]), np.array([0]))
    with pytest.raises(EntropyDecodeError, match="empty"):
        CODER.decode(b"", np.zeros(3, np.int64))
