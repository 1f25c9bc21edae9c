"""A coded face as a file (`.fcb`, `application/vnd.facecodec.face`): encode a photo's faces, decode a
file to pixels, describe a file's layers.

The file is exactly the versioned container of docs/bitstream.md, nothing around it: no pickle, no
archive, nothing that runs code when opened. Every way a file can be wrong (truncated, corrupted, an
unknown codec, a level it does not hold, payloads the codec refuses) ends in one `FaceFileError`, so
the CLI and the reconstructor's REST route refuse a stranger's file with one clear message.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from facecodec.bitstream import BitstreamError, CodedFace, _varint, parse
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.enhancement_layer import EnhancementLayerError
from facecodec.codec.profiles import FaceCodec, UnknownProfileError, codec_for, profile_by_id
from facecodec.frontend import WEB_FORMATS, FaceFrontEnd, decode_image

EXTENSION = ".fcb"
MEDIA_TYPE = "application/vnd.facecodec.face"
Layers = Literal["base", "full"]
# What the codec raises on payloads it cannot decode; everything else would be a bug, not a bad file.
_DECODE_ERRORS = (BitstreamError, BaseLayerError, EnhancementLayerError, UnknownProfileError)


class FaceFileError(ValueError):
    """The bytes are not a face file this decoder can read; the message says why."""


class NoFaceFound(ValueError):
    """The photo decoded, but no face was found in it."""


@dataclass(frozen=True)
class PhotoFace:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the photo's pixels
    score: float
    crop: np.ndarray  # the aligned crop the codec coded (CROP_SIZE x CROP_SIZE x 3 uint8)
    coded: CodedFace

    def to_bytes(self) -> bytes:
        return self.coded.to_bytes()


def _area(box: tuple[float, float, float, float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def encode_photo(photo: bytes, codec: FaceCodec, front_end: FaceFrontEnd, levels: int | None = None,
                 all_faces: bool = False) -> tuple[list[PhotoFace], int]:
    """(the photo's largest face, or every face, largest first, coded with `levels` enhancement layers
    (None: every level the codec has; 0: the base layer alone); how many faces the photo holds).
    ImageDecodeError for a photo that is not a JPEG/PNG/WebP image; NoFaceFound when it holds no face."""
    levels = codec.levels if levels is None else levels
    if not 0 <= levels <= codec.levels:
        raise ValueError(f"levels must be 0..{codec.levels} for codec {codec.spec.name}")
    rgb = decode_image(photo, WEB_FORMATS)
    faces = sorted(front_end.faces(rgb), key=lambda f: _area(f.detection.box), reverse=True)
    if not faces:
        raise NoFaceFound("no face found in the photo")
    found = len(faces)
    if not all_faces:
        faces = faces[:1]
    descriptors = front_end.describe(np.stack([f.crop for f in faces]))
    return [PhotoFace(f.detection.box, f.detection.score, f.crop,
                      codec.encode(f.crop, d, levels) if levels else codec.encode_base(d))
            for f, d in zip(faces, descriptors)], found


def read(data: bytes) -> CodedFace:
    """The container, fully parsed (every CRC checked, no trailing bytes); FaceFileError otherwise."""
    try:
        return parse(data)
    except BitstreamError as exc:
        raise FaceFileError(f"not a valid face file: {exc}") from exc


def _codec(coded: CodedFace) -> FaceCodec:
    try:
        return codec_for(coded.model_id, coded.rate_id)
    except UnknownProfileError as exc:
        raise FaceFileError(f"cannot decode this face file: {exc}") from exc


def levels_held(coded: CodedFace, codec: FaceCodec) -> list[int]:
    """The levels this file decodes at: those whose every needed layer it holds."""
    have = {layer.level for layer in coded.enhancements}
    return [k for k in range(1, codec.levels + 1) if set(codec.layers_needed(k)) <= have]


def decode(data: bytes, layers: Layers = "full", level: int | None = None) -> tuple[np.ndarray, int]:
    """(the aligned face as RGB uint8, the enhancement level it was decoded at; 0: base layer alone).
    `full` with no `level`: the highest level the file holds (the base layer if it holds none)."""
    coded = read(data)
    codec = _codec(coded)
    if layers == "base":
        level = 0
    else:
        held = levels_held(coded, codec)
        if level is None:
            level = held[-1] if held else 0
        elif level not in held:
            raise FaceFileError(f"this face file cannot be decoded at level {level}: it holds levels "
                                f"{held or 'none (base layer only)'}")
    try:
        return codec.reconstruct(coded, level), level
    except _DECODE_ERRORS as exc:
        raise FaceFileError(f"cannot decode this face file: {exc}") from exc


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def describe(data: bytes) -> dict:
    """What `facecodec inspect` prints: the container's fields, each layer's size and stored CRC, and
    which levels it decodes at. Reads no weights beyond the profile table."""
    coded = read(data)
    base_crc, layer_crcs = _stored_crcs(bytes(data), coded)
    out: dict = {
        "media_type": MEDIA_TYPE,
        "container_version": coded.version,
        "bytes": len(data),
        "model_id": coded.model_id,
        "rate_id": coded.rate_id,
        "crop_size": coded.crop_size,
        "base": {"bytes": len(coded.base), "crc32": base_crc},
        "enhancements": [{"level": layer.level, "bytes": len(layer.payload), "crc32": crc}
                         for layer, crc in zip(coded.enhancements, layer_crcs)],
    }
    try:
        spec = profile_by_id(coded.model_id)
    except UnknownProfileError as exc:
        out.update(profile=None, decodable=False, why=str(exc), levels=[])
        return out
    out["profile"] = spec.name
    if coded.rate_id not in spec.base_files:
        out.update(decodable=False, why=f"profile {spec.name} has no rate id {coded.rate_id}", levels=[])
        return out
    out.update(decodable=True, levels=levels_held(coded, _codec(coded)))
    return out


def _stored_crcs(data: bytes, coded: CodedFace) -> tuple[str, list[str]]:
    """The CRCs as stored in the (already checked) container, in hex: the base layer's, then each
    enhancement layer's. Offsets follow from the parsed fields' serialised sizes."""
    pos = len(coded.base_only().to_bytes()) - 1  # the base-only form ends with n_enh = 0, one byte
    base_crc = data[pos - 4 : pos].hex()
    pos += len(_varint(len(coded.enhancements)))
    crcs = []
    for layer in coded.enhancements:
        pos += 1 + len(_varint(len(layer.payload))) + len(layer.payload)
        crcs.append(data[pos : pos + 4].hex())
        pos += 4
    return base_crc, crcs
