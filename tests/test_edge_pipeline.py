"""The edge's frame pipeline: per-camera state stays bounded, whatever camera ids clients send."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edge_encoder.pipeline import EncodePipeline, TooManyCameras
from facecodec.codec.profiles import codec_by_name


def test_cameras_beyond_the_bound_are_refused_and_known_ones_still_served(front_end) -> None:
    pipeline = EncodePipeline(codec_by_name("scalable"), None, front_end, max_cameras=2, workers=2)
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buffer, "PNG")
    blank = buffer.getvalue()
    assert pipeline.encode_frame("a", blank).detected == 0
    assert pipeline.encode_frame("b", blank).detected == 0
    with pytest.raises(TooManyCameras, match="at most 2 cameras"):
        pipeline.encode_frame("c", blank)
    assert pipeline.encode_frame("a", blank).faces == []
