"""The rate-fidelity anchors outside Pillow's own formats: HEVC in HEIF (pillow-heif) and raw VVC (libvvenc)."""

from __future__ import annotations

import numpy as np
import pytest

from facecodec.eval.anchors import (
    QUALITIES,
    decode_image,
    encode_image,
    hevc_bitstream_bytes,
    vvc_unavailable,
)
from facecodec.eval.metrics import psnr
from facecodec.frontend import decode_image as decode_photo
from tests.helpers import lfw_image


@pytest.fixture(scope="module")
def crop(front_end) -> np.ndarray:
    aligned = front_end.largest_face(decode_photo(lfw_image("Colin_Powell", 1).read_bytes()))
    assert aligned is not None
    return aligned.crop


def test_hevc_round_trip_keeps_shape_and_fidelity_and_bytes_grow_with_quality(crop: np.ndarray) -> None:
    files = {q: encode_image(crop, "hevc", q) for q in (10, 50, 85)}
    assert all(f[4:12] == b"ftypheic" for f in files.values())  # a HEIF file with HEVC inside
    decoded = decode_image(files[50])
    assert decoded.shape == crop.shape and decoded.dtype == np.uint8
    assert psnr(crop, decoded) > 25.0
    sizes = [len(files[q]) for q in sorted(files)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    # The HEVC stream alone is the file less a few hundred bytes of HEIF boxes, whatever the quality.
    for data in files.values():
        overhead = len(data) - hevc_bitstream_bytes(data)
        assert 100 < overhead < 600


def test_anchor_settings_run_from_worst_to_best() -> None:
    assert list(QUALITIES["hevc"]) == sorted(QUALITIES["hevc"])
    assert list(QUALITIES["vvc"]) == sorted(QUALITIES["vvc"], reverse=True)  # QPs: best last, like the others


def test_vvc_round_trip(crop: np.ndarray) -> None:
    reason = vvc_unavailable()
    if reason:
        pytest.skip(f"the VVC anchor needs an ffmpeg built with libvvenc (imageio-ffmpeg has none): {reason}")
    streams = {qp: encode_image(crop, "vvc", qp) for qp in (46, 28)}
    assert all(s.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")) for s in streams.values())  # Annex B
    decoded = decode_image(streams[28], "vvc")
    assert decoded.shape == crop.shape and decoded.dtype == np.uint8
    assert psnr(crop, decoded) > 30.0
    assert len(streams[46]) < len(streams[28])
