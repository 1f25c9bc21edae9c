"""Base layer -> descriptor, and the codec that decoded it (its calibration and descriptor model)."""

from __future__ import annotations

import numpy as np

from facecodec.bitstream import parse
from facecodec.codec.profiles import FaceCodec, codec_for


def decode_base_layer(container: bytes) -> tuple[np.ndarray, FaceCodec]:
    """(descriptor, the codec that decoded it) from a base-only container.
    Raises BitstreamError / UnknownProfileError / BaseLayerError."""
    coded = parse(container, base_only=True)
    codec = codec_for(coded.model_id, coded.rate_id)
    return codec.decode_descriptor(coded), codec
