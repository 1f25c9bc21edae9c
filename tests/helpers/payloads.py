"""Hostile request bodies for service tests: decompression bombs, foreign formats, endless uploads."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator

from PIL import Image


def huge_png(width: int, height: int) -> bytes:
    """A valid all-black RGB PNG of width x height that compresses to almost nothing (~1000:1):
    a few hundred KB on the wire, width * height * 3 bytes once decoded. Written row by row, so
    making it costs no more memory than the PNG itself."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)  # filter byte + RGB
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def image_as(fmt: str, size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 90, 60)).save(buffer, format=fmt)
    return buffer.getvalue()


class EndlessBody:
    """A chunked upload (no Content-Length) of up to `total` bytes that counts what the client
    actually sent: a server that stops reading at its limit stops the client from sending more."""

    def __init__(self, total: int, chunk: int = 256 * 1024, prefix: bytes = b"") -> None:
        self.total, self.chunk, self.prefix, self.sent = total, chunk, prefix, 0

    def __iter__(self) -> Iterator[bytes]:
        block = b"\x00" * self.chunk
        if self.prefix:
            self.sent += len(self.prefix)
            yield self.prefix
        while self.sent < self.total:
            self.sent += len(block)
            yield block


BOUNDARY = "endless"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def multipart_file_head(field: str) -> bytes:
    """The start of a well-formed multipart body whose file part then never ends."""
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"f.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()
