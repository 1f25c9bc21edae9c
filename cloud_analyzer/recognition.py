"""Base layer -> descriptor -> gallery decision. Shared by the ingest workers and the REST search."""

from __future__ import annotations

import numpy as np

from cloud_analyzer.gallery import Gallery, Match
from facecodec.bitstream import parse
from facecodec.codec.profiles import codec_for


def decode_base_layer(container: bytes) -> tuple[np.ndarray, float]:
    """(descriptor, that codec's calibrated match threshold) from a base-only container.
    Raises BitstreamError / UnknownProfileError / BaseLayerError."""
    coded = parse(container, base_only=True)
    codec = codec_for(coded.model_id, coded.rate_id)
    return codec.decode_descriptor(coded), codec.match_threshold


def decide(gallery: Gallery, descriptor: np.ndarray, threshold: float) -> tuple[Match | None, Match | None]:
    """(match if above threshold, best candidate regardless)."""
    top = gallery.search(descriptor, k=1)
    if not top:
        return None, None
    return (top[0] if top[0].similarity >= threshold else None), top[0]
