"""The container for one coded face: the only format that crosses the network for a face.

Layout (see docs/bitstream.md):

    magic "FC" | version u8 | model_id u8 | rate_id u8 | crop_size varint
    | base_len varint | base payload | crc32(all bytes so far) u32be
    | n_enh varint | n_enh x ( level u8 | len varint | payload | crc32(level, len, payload) u32be )

A base-only container costs 12 bytes over its payload (for payloads and crop sizes under 128). The
base layer decodes alone: a parser that stops after its CRC has everything recognition needs. Any
malformed input raises `BitstreamError` and nothing else.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b"FC"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
MAX_LAYER_BYTES = 1 << 20
MAX_ENHANCEMENT_LAYERS = 16
MAX_CONTAINER_BYTES = MAX_LAYER_BYTES * (MAX_ENHANCEMENT_LAYERS + 1) + 4096


class BitstreamError(ValueError):
    """The bytes are not a valid coded-face container (truncated, corrupted, oversized, unknown version)."""


@dataclass(frozen=True)
class EnhancementLayer:
    level: int  # 1..255: quality level; decoding needs every layer up to the wanted one
    payload: bytes


@dataclass(frozen=True)
class CodedFace:
    model_id: int
    rate_id: int
    crop_size: int
    base: bytes
    enhancements: tuple[EnhancementLayer, ...] = field(default_factory=tuple)
    version: int = VERSION

    def __post_init__(self) -> None:
        for name in ("version", "model_id", "rate_id"):
            if not 0 <= getattr(self, name) <= 255:
                raise BitstreamError(f"{name} must fit in one byte")
        if not 1 <= self.crop_size <= 4096:
            raise BitstreamError("crop_size out of range")
        if len(self.base) > MAX_LAYER_BYTES or any(
            len(e.payload) > MAX_LAYER_BYTES for e in self.enhancements
        ):
            raise BitstreamError("layer larger than MAX_LAYER_BYTES")
        if len(self.enhancements) > MAX_ENHANCEMENT_LAYERS:
            raise BitstreamError("too many enhancement layers")
        if any(not 1 <= e.level <= 255 for e in self.enhancements):
            raise BitstreamError("enhancement level must be 1..255")

    def base_only(self) -> CodedFace:
        return CodedFace(self.model_id, self.rate_id, self.crop_size, self.base, (), self.version)

    def to_bytes(self) -> bytes:
        head = bytearray(MAGIC)
        head += bytes([self.version, self.model_id, self.rate_id])
        head += _varint(self.crop_size) + _varint(len(self.base)) + self.base
        out = bytearray(head) + struct.pack(">I", zlib.crc32(head))
        out += _varint(len(self.enhancements))
        for layer in self.enhancements:
            body = bytes([layer.level]) + _varint(len(layer.payload)) + layer.payload
            out += body + struct.pack(">I", zlib.crc32(body))
        return bytes(out)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise BitstreamError(
                f"truncated: needed {n} bytes at offset {self.pos}, have {len(self.data) - self.pos}"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def varint(self, limit: int) -> int:
        # Only minimal LEB128, and never more bytes than `limit` needs. Unbounded, a run of continuation
        # bytes cost one loop per byte and, past ~2 kB, built an int too large to format into the error
        # message (a plain ValueError escaped); overlong forms gave one container several encodings.
        max_bytes = max(1, (limit.bit_length() + 6) // 7)
        value = 0
        for i in range(max_bytes):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * i)
            if value > limit:
                raise BitstreamError(f"length {value} exceeds limit {limit}")
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise BitstreamError(f"overlong varint at offset {self.pos - i - 1}")
                return value
        raise BitstreamError(f"varint longer than {max_bytes} bytes exceeds limit {limit}")

    def crc(self, start: int) -> None:
        covered = self.data[start : self.pos]
        (expected,) = struct.unpack(">I", self.take(4))
        if zlib.crc32(covered) != expected:
            raise BitstreamError(f"CRC mismatch in bytes {start}..{self.pos - 4}: data corrupted")


def parse(data: bytes, base_only: bool = False) -> CodedFace:
    """Parse a container; with `base_only`, bytes after the base layer are ignored (not even read)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BitstreamError("bitstream must be bytes")
    data = bytes(data)
    if len(data) > MAX_CONTAINER_BYTES:
        raise BitstreamError(f"container of {len(data)} bytes exceeds {MAX_CONTAINER_BYTES}")
    r = _Reader(data)
    if r.take(2) != MAGIC:
        raise BitstreamError("not a coded-face container (bad magic)")
    version = r.u8()
    if version not in SUPPORTED_VERSIONS:
        raise BitstreamError(
            f"unsupported container version {version}; this decoder reads {SUPPORTED_VERSIONS}"
        )
    model_id, rate_id = r.u8(), r.u8()
    crop_size = r.varint(4096)
    base = r.take(r.varint(MAX_LAYER_BYTES))
    r.crc(0)
    enhancements: list[EnhancementLayer] = []
    if not base_only:
        for _ in range(r.varint(MAX_ENHANCEMENT_LAYERS)):
            start = r.pos
            level = r.u8()
            payload = r.take(r.varint(MAX_LAYER_BYTES))
            r.crc(start)
            enhancements.append(EnhancementLayer(level, payload))
        if r.pos != len(data):
            raise BitstreamError(f"{len(data) - r.pos} trailing bytes after the last layer")
    return CodedFace(model_id, rate_id, crop_size, base, tuple(enhancements), version)
