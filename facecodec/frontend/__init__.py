"""Face front end: decode an image, detect faces, find landmarks, align, describe."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facecodec.frontend.align import CROP_SIZE, align
from facecodec.frontend.describe import DESCRIPTOR_DIM, FaceDescriber, normalise
from facecodec.frontend.detect import Detection, FaceDetector
from facecodec.frontend.landmarks import LandmarkDetector, five_points

MAX_IMAGE_PIXELS = 40_000_000

__all__ = [
    "CROP_SIZE",
    "DESCRIPTOR_DIM",
    "AlignedFace",
    "FaceFrontEnd",
    "ImageDecodeError",
    "decode_image",
    "normalise",
]


class ImageDecodeError(ValueError):
    """The bytes are not a decodable JPEG/PNG/WebP image (or are too large)."""


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes to HxWx3 uint8 RGB, rejecting empty, corrupt and oversized input."""
    if not data:
        raise ImageDecodeError("empty image body")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ImageDecodeError(f"image of {image.width}x{image.height} exceeds {MAX_IMAGE_PIXELS} pixels")
            image.load()  # force a full decode so truncated files fail here, not later
            return _to_rgb(ImageOps.exif_transpose(image))
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"not a decodable image: {exc}") from exc


def _to_rgb(image: Image.Image) -> np.ndarray:
    """HxWx3 uint8 from any mode Pillow decodes. Pillow's own convert("RGB") clips 16-bit grey (modes
    I;16* and I) at 255, which turns a 16-bit PNG white; scale it down instead."""
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image, np.float64)
        scale = 257.0 if image.mode != "F" and values.max() > 255 else 1.0
        grey = np.clip(np.round(values / scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode in ("P", "PA", "LA", "RGBA") or "transparency" in image.info:
        # Transparent pixels become black (what a camera would never send anyway), not palette noise.
        image = image.convert("RGBA")
        black = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, image)
    return np.asarray(image.convert("RGB"))


@dataclass(frozen=True)
class AlignedFace:
    detection: Detection
    landmarks: np.ndarray  # 5x2 in image pixels
    crop: np.ndarray  # CROP_SIZE x CROP_SIZE x 3 uint8 RGB
    points68: np.ndarray | None = None  # the landmark model's 68 points, image pixels


def _area(box: tuple[float, float, float, float]) -> float:
    x1, y1, x2, y2 = box
    return (x2 - x1) * (y2 - y1)


class FaceFrontEnd:
    """Detect -> 5 landmarks -> similarity alignment -> 512-d descriptor."""

    def __init__(self, score_threshold: float = 0.7, max_faces: int = 32, tiling: bool = True) -> None:
        self.detector = FaceDetector(score_threshold=score_threshold, tiling=tiling)
        self.landmarks = LandmarkDetector()
        self.describer = FaceDescriber()
        self.max_faces = max_faces

    def faces(self, rgb: np.ndarray) -> list[AlignedFace]:
        faces = []
        for det in self.detector(rgb)[: self.max_faces]:
            points68 = self.landmarks.points68(rgb, det.box)
            points = five_points(points68)
            faces.append(AlignedFace(det, points, align(rgb, points), points68))
        return faces

    def largest_face(self, rgb: np.ndarray) -> AlignedFace | None:
        faces = self.faces(rgb)
        if not faces:
            return None
        return max(faces, key=lambda f: _area(f.detection.box))

    def describe(self, crops: np.ndarray) -> np.ndarray:
        return self.describer(crops)
