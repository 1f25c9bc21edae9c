"""Test images built from the shared LFW photos."""

from __future__ import annotations

import io

from PIL import Image

from tests.helpers import lfw_image


def side_by_side(*photos: tuple[str, int]) -> bytes:
    """One JPEG holding several LFW photos next to each other (250 px each): several people in one frame."""
    images = [Image.open(lfw_image(name, n)).convert("RGB") for name, n in photos]
    canvas = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)))
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=95)
    return out.getvalue()


def blank(fmt: str = "PNG", size: tuple[int, int] = (200, 200)) -> bytes:
    """An image with no face in it."""
    out = io.BytesIO()
    Image.new("RGB", size, (90, 90, 90)).save(out, fmt)
    return out.getvalue()
