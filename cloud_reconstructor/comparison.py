"""How a face's layers compare with ordinary image codecs: the bytes each level costs, its PSNR, and a
JPEG and a WebP of the same crop squeezed to the same byte size.

The reference is the face's full reconstruction (every enhancement level its edge keeps): the camera's
original crop never leaves the edge, so nothing closer to it exists in the cloud. PSNR against it says
how far a level is from the best this face can be shown, not from the scene.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException
from PIL import Image
from pydantic import BaseModel, Field

from facecodec.bitstream import CodedFace
from facecodec.eval.metrics import psnr

JPEG_QUALITIES = (1, 95)  # Pillow's useful range; above 95 only grows the file
WEBP_QUALITIES = (0, 100)


def psnr_db(image: np.ndarray, reference: np.ndarray) -> float | None:
    """Peak signal-to-noise ratio in dB over 8-bit RGB; None for identical images (infinite)."""
    return None if np.array_equal(image, reference) else round(psnr(image, reference), 2)


def encode(image: np.ndarray, kind: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=kind, quality=quality)
    return buffer.getvalue()


@dataclass
class Coded:
    kind: str  # JPEG | WEBP
    quality: int
    data: bytes
    within_budget: bool  # False: even the lowest quality is larger than the budget (its size is shown)


def fit(image: np.ndarray, kind: str, budget: int) -> Coded:
    """The highest quality whose file is at most `budget` bytes (binary search: size grows with quality
    for these encoders, near enough); the lowest quality if none fits."""
    lo, hi = JPEG_QUALITIES if kind == "JPEG" else WEBP_QUALITIES
    best: Coded | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        data = encode(image, kind, mid)
        if len(data) <= budget:
            best, lo = Coded(kind, mid, data, True), mid + 1
        else:
            hi = mid - 1
    if best is None:
        lowest = JPEG_QUALITIES[0] if kind == "JPEG" else WEBP_QUALITIES[0]
        best = Coded(kind, lowest, encode(image, kind, lowest), False)
    return best


def layer_bytes(coded: CodedFace) -> dict[str, int]:
    """Bytes of each layer in a container: the base layer, then each enhancement level's."""
    return {"base": len(coded.base), **{str(layer.level): len(layer.payload) for layer in coded.enhancements}}


def coded_out(coded: Coded, reference: np.ndarray) -> dict[str, object]:
    decoded = np.asarray(Image.open(io.BytesIO(coded.data)).convert("RGB"))
    media = "image/jpeg" if coded.kind == "JPEG" else "image/webp"
    return {"quality": coded.quality, "bytes": len(coded.data), "within_budget": coded.within_budget,
            "psnr_db": psnr_db(decoded, reference), "media_type": media,
            "image_base64": base64.b64encode(coded.data).decode()}


class CodecAtBudget(BaseModel):
    quality: int = Field(description="the encoder's quality setting found by binary search")
    bytes: int
    within_budget: bool = Field(description="false: even the lowest quality is larger than the budget")
    psnr_db: float | None = Field(description="against the reference; null: identical")
    media_type: str
    image_base64: str


class Comparison(BaseModel):
    face_id: str
    level: int = Field(description="0: base layer alone; k: base + the enhancement layers level k decodes from")
    levels: int = Field(description="enhancement levels this face's edge keeps")
    reference: str = Field(description="what PSNR is measured against")
    layer_bytes: dict[str, int] = Field(description="bytes of each layer this level decodes from (base, 1, 2...)")
    budget_bytes: int = Field(description="their sum: the byte size JPEG and WebP are held to")
    psnr_db: float | None = Field(description="this level against the reference; null: it is the reference")
    jpeg: CodecAtBudget
    webp: CodecAtBudget


REFERENCE = ("the face's full reconstruction (base + every enhancement level its edge keeps): the camera's "
             "original crop never leaves the edge; JPEG and WebP encode that reference at the level's byte size")
# (face_id, level or None for all, full?) -> (image, its container, its level): Reconstructor.decoded
Decoder = Callable[[str, int | None, bool], tuple[np.ndarray, CodedFace, int]]


def compare(decoded: Decoder, face_id: str, level: int | None) -> Comparison:
    reference, coded, top = decoded(face_id, None, True)
    wanted = top if level is None else level
    if wanted > top:
        raise HTTPException(422, f"level must be 0..{top} for this face (levels kept by its edge)")
    image = reference
    if wanted < top:
        image, coded, wanted = decoded(face_id, wanted, wanted > 0)
    sizes = layer_bytes(coded)
    budget = sum(sizes.values())
    jpeg, webp = (fit(reference, kind, budget) for kind in ("JPEG", "WEBP"))
    return Comparison(face_id=face_id, level=wanted, levels=top, reference=REFERENCE, layer_bytes=sizes,
                      budget_bytes=budget, psnr_db=psnr_db(image, reference),
                      jpeg=CodecAtBudget(**coded_out(jpeg, reference)),
                      webp=CodecAtBudget(**coded_out(webp, reference)))
