"""Property tests for the coded-face container (facecodec/bitstream.py, docs/bitstream.md).

The container is the only face format that crosses the network, so the parser faces untrusted bytes:
besides the round trip, these tests check that every malformed input (truncated, flipped, shifted,
random, oversized) raises `BitstreamError` and nothing else, which is what the services catch.
"""

from __future__ import annotations

import re
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facecodec.bitstream import (
    MAGIC,
    MAX_CONTAINER_BYTES,
    MAX_ENHANCEMENT_LAYERS,
    MAX_LAYER_BYTES,
    SUPPORTED_VERSIONS,
    VERSION,
    BitstreamError,
    CodedFace,
    EnhancementLayer,
    _varint,
    parse,
)

# Moderate example counts keep the file at a few seconds; deadline off because the CI box is shared
# and a slow example is not a bug here.
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# The per-byte tests parse each example hundreds of times: fewer examples, same coverage per byte.
PER_BYTE = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

payloads = st.binary(max_size=300)
layers = st.builds(EnhancementLayer, level=st.integers(1, 255), payload=payloads)


@st.composite
def coded_faces(draw: st.DrawFn, max_layers: int = 4) -> CodedFace:
    return CodedFace(
        model_id=draw(st.integers(0, 255)),
        rate_id=draw(st.integers(0, 255)),
        crop_size=draw(st.integers(1, 4096)),
        base=draw(payloads),
        enhancements=tuple(draw(st.lists(layers, max_size=max_layers))),
    )


def base_end(face: CodedFace) -> int:
    """Offset just past the base layer's CRC: everything a base-only parse reads."""
    return len(face.base_only().to_bytes()) - 1  # minus the n_enh varint (0 -> one byte)


def with_crc(body: bytes) -> bytes:
    return body + struct.pack(">I", zlib.crc32(body))


# --- round trips ---------------------------------------------------------------------------------------


@PROPERTY
@given(coded_faces())
def test_round_trip(face: CodedFace) -> None:
    blob = face.to_bytes()
    assert parse(blob) == face
    assert parse(bytearray(blob)) == face
    assert parse(memoryview(blob)) == face
    assert blob.startswith(MAGIC + bytes([VERSION]))


@PROPERTY
@given(coded_faces(), st.binary(max_size=64))
def test_base_only_parse_ignores_the_layers_and_anything_after(face: CodedFace, junk: bytes) -> None:
    blob = face.to_bytes()
    assert parse(blob, base_only=True) == face.base_only()
    # The base layer ends at its CRC: whatever follows is not even read in base-only mode.
    assert parse(blob[: base_end(face)] + junk, base_only=True) == face.base_only()
    assert face.base_only().enhancements == ()
    assert parse(face.base_only().to_bytes()) == face.base_only()


@PROPERTY
@given(st.binary(max_size=127), st.integers(1, 127))
def test_base_only_overhead_is_12_bytes_for_small_payloads(base: bytes, crop_size: int) -> None:
    # magic 2 + version, model, rate 3 + crop 1 + base_len 1 + crc 4 + n_enh 1 = 12
    face = CodedFace(model_id=1, rate_id=0, crop_size=crop_size, base=base)
    assert len(face.to_bytes()) - len(base) <= 12


def test_overhead_for_the_production_crop_size() -> None:
    face = CodedFace(model_id=1, rate_id=0, crop_size=112, base=bytes(100))
    assert len(face.to_bytes()) == 100 + 12


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (4096, "8020"), (1 << 20, "808040")],
)
def test_varint_is_minimal_leb128(value: int, encoded: str) -> None:
    assert _varint(value).hex() == encoded
    # A parse of a container with that crop size / payload length reads the same bytes back.
    if 1 <= value <= 4096:
        assert parse(CodedFace(0, 0, value, b"").to_bytes()).crop_size == value


# --- corruption ----------------------------------------------------------------------------------------


@PER_BYTE
@given(coded_faces(max_layers=3))
def test_every_truncation_raises(face: CodedFace) -> None:
    blob = face.to_bytes()
    for n in range(len(blob)):
        with pytest.raises(BitstreamError):
            parse(blob[:n])
        # Base-only mode needs exactly the bytes up to the base CRC, no more.
        if n < base_end(face):
            with pytest.raises(BitstreamError):
                parse(blob[:n], base_only=True)
        else:
            assert parse(blob[:n], base_only=True) == face.base_only()


@PROPERTY
@given(coded_faces(), st.data())
def test_single_byte_flip_raises(face: CodedFace, data: st.DataObject) -> None:
    blob = bytearray(face.to_bytes())
    pos = data.draw(st.integers(0, len(blob) - 1), label="pos")
    blob[pos] ^= data.draw(st.integers(1, 255), label="xor")
    # Every byte but n_enh is CRC-covered (CRC-32 catches every error burst of up to 32 bits), and a
    # changed n_enh leaves either trailing bytes or too few: so no single flip can go unnoticed.
    with pytest.raises(BitstreamError):
        parse(bytes(blob))
    if pos < base_end(face):
        with pytest.raises(BitstreamError):
            parse(bytes(blob), base_only=True)


@PER_BYTE
@given(coded_faces(max_layers=2), st.data())
def test_every_single_byte_flip_position_raises(face: CodedFace, data: st.DataObject) -> None:
    blob = face.to_bytes()
    xor = data.draw(st.integers(1, 255), label="xor")
    for pos in range(len(blob)):
        flipped = bytearray(blob)
        flipped[pos] ^= xor
        with pytest.raises(BitstreamError):
            parse(bytes(flipped))


@PROPERTY
@given(coded_faces(), st.data())
def test_byte_insertion_or_deletion_raises(face: CodedFace, data: st.DataObject) -> None:
    blob = face.to_bytes()
    if data.draw(st.booleans(), label="insert"):
        pos = data.draw(st.integers(0, len(blob)), label="pos")
        mutated = blob[:pos] + bytes([data.draw(st.integers(0, 255), label="byte")]) + blob[pos:]
    else:
        pos = data.draw(st.integers(0, len(blob) - 1), label="pos")
        mutated = blob[:pos] + blob[pos + 1 :]
    # A shift moves the CRC the parser reads, so it matches only by a 2**-32 accident.
    with pytest.raises(BitstreamError):
        parse(mutated)


def parse_or_bitstream_error(blob: bytes, base_only: bool) -> CodedFace | None:
    try:
        return parse(blob, base_only=base_only)
    except BitstreamError:
        return None  # anything else propagates and fails the test


@PROPERTY
@given(st.binary(max_size=400), st.booleans())
def test_random_bytes_raise_only_bitstream_error(blob: bytes, base_only: bool) -> None:
    parse_or_bitstream_error(blob, base_only)
    # Behind a valid magic and version, so the fuzz reaches the varints and CRCs.
    parse_or_bitstream_error(MAGIC + bytes([VERSION]) + blob, base_only)


@PROPERTY
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=8), st.binary(max_size=80), st.binary())
def test_random_bytes_behind_a_valid_crc(
    model_id: int, rate_id: int, varints: bytes, base: bytes, tail: bytes
) -> None:
    # Random header varints and tail, but a base CRC that matches, so the layer parser gets fuzzed too.
    blob = with_crc(MAGIC + bytes([VERSION, model_id, rate_id]) + varints + base) + tail
    for base_only in (False, True):
        face = parse_or_bitstream_error(blob, base_only)
        if face is not None and not base_only:
            # Whatever parses is in canonical form: one face has exactly one encoding.
            assert face.to_bytes() == blob


def test_non_bytes_input_raises_bitstream_error() -> None:
    with pytest.raises(BitstreamError, match="must be bytes"):
        parse("FC")  # type: ignore[arg-type]


# --- version, magic, limits ----------------------------------------------------------------------------


@PROPERTY
@given(coded_faces(max_layers=1), st.integers(0, 255).filter(lambda v: v not in SUPPORTED_VERSIONS))
def test_unknown_version_is_refused_clearly(face: CodedFace, version: int) -> None:
    future = CodedFace(face.model_id, face.rate_id, face.crop_size, face.base, face.enhancements, version)
    # The message names both the version found and those this decoder reads.
    expected = rf"unsupported container version {version}\b.*{re.escape(str(SUPPORTED_VERSIONS))}"
    with pytest.raises(BitstreamError, match=expected):
        parse(future.to_bytes())
    with pytest.raises(BitstreamError, match=expected):
        parse(future.to_bytes(), base_only=True)


@PROPERTY
@given(coded_faces(max_layers=1), st.binary(min_size=2, max_size=2).filter(lambda m: m != MAGIC))
def test_wrong_magic_is_refused_clearly(face: CodedFace, magic: bytes) -> None:
    with pytest.raises(BitstreamError, match="bad magic"):
        parse(magic + face.to_bytes()[2:])


def test_version_must_fit_in_a_byte() -> None:
    with pytest.raises(BitstreamError, match="version"):
        CodedFace(1, 0, 112, b"", version=256)


HEAD = MAGIC + bytes([VERSION, 1, 0])


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        pytest.param(HEAD + _varint(4097) + b"\x00", "exceeds limit 4096", id="crop_size>4096"),
        # Refused from the length field alone: before any allocation or CRC.
        pytest.param(
            HEAD + b"\x70" + _varint(MAX_LAYER_BYTES + 1), f"exceeds limit {MAX_LAYER_BYTES}", id="base_len"
        ),
        pytest.param(HEAD + b"\x70" + _varint(1 << 40), "exceeds limit", id="base_len_2**40"),
        pytest.param(
            with_crc(HEAD + b"\x70\x00") + _varint(MAX_ENHANCEMENT_LAYERS + 1), "exceeds limit", id="n_enh"
        ),
        pytest.param(
            with_crc(HEAD + b"\x70\x00") + b"\x01\x01" + _varint(MAX_LAYER_BYTES + 1),
            "exceeds limit",
            id="layer_len",
        ),
        # Overlong varints (112 as f0 00, 0 as 80 00): one face must have exactly one encoding.
        pytest.param(with_crc(HEAD + b"\xf0\x00\x00") + b"\x00", "overlong varint", id="overlong_crop"),
        pytest.param(with_crc(HEAD + b"\x70\x80\x00") + b"\x00", "overlong varint", id="overlong_len"),
        # A run of continuation bytes stops at the limit's width; it once leaked a plain ValueError
        # (an int too large to format) and cost one loop per byte.
        pytest.param(HEAD + b"\x80" * 5000 + b"\x01", "exceeds limit", id="continuation_run_crop"),
        pytest.param(HEAD + b"\x70" + b"\x80" * 5000, "exceeds limit", id="continuation_run_len"),
        # Out of range values, even behind valid CRCs.
        pytest.param(with_crc(HEAD + b"\x00\x00") + b"\x00", "crop_size", id="crop_size_0"),
        pytest.param(with_crc(HEAD + b"\x70\x00") + b"\x01" + with_crc(b"\x00\x00"), "level", id="level_0"),
    ],
)
def test_oversized_and_malformed_fields_are_refused(blob: bytes, message: str) -> None:
    with pytest.raises(BitstreamError, match=message):
        parse(blob)


def test_oversized_container_is_refused_before_parsing() -> None:
    with pytest.raises(BitstreamError, match="exceeds"):
        parse(bytes(MAX_CONTAINER_BYTES + 1))


def test_encoder_refuses_what_the_decoder_would() -> None:
    with pytest.raises(BitstreamError):
        CodedFace(1, 0, 112, bytes(MAX_LAYER_BYTES + 1))
    with pytest.raises(BitstreamError):
        CodedFace(1, 0, 112, b"", tuple(EnhancementLayer(1, b"") for _ in range(MAX_ENHANCEMENT_LAYERS + 1)))
    with pytest.raises(BitstreamError):
        CodedFace(1, 0, 112, b"", (EnhancementLayer(0, b""),))
    with pytest.raises(BitstreamError):
        CodedFace(256, 0, 112, b"")
    with pytest.raises(BitstreamError):
        CodedFace(1, 0, 0, b"")


def test_largest_legal_container_round_trips() -> None:
    face = CodedFace(255, 255, 4096, bytes(MAX_LAYER_BYTES), (EnhancementLayer(255, bytes(MAX_LAYER_BYTES)),))
    assert parse(face.to_bytes()) == face
