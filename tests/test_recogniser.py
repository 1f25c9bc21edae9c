"""The torch recogniser used for identity losses is the served one: same descriptors as onnxruntime."""

from __future__ import annotations

import numpy as np
import torch

from facecodec.frontend import decode_image
from facecodec.models.recogniser import Recogniser
from tests.helpers import lfw_image


def test_torch_recogniser_matches_onnxruntime_on_a_batch(front_end) -> None:
    crops = []
    for name in ("Colin_Powell", "Serena_Williams", "Tony_Blair"):
        face = front_end.largest_face(decode_image(lfw_image(name, 1).read_bytes()))
        assert face is not None
        crops.append(face.crop)
    crops = np.stack(crops)
    served = front_end.describe(crops)
    with torch.no_grad():
        ours = Recogniser()(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0).numpy()
    assert ours.shape == served.shape == (3, 512)  # a batch: the ONNX graph itself only takes one face
    assert np.abs(ours - served).max() < 1e-4
    assert (ours @ ours.T)[0, 1] < 0.5  # different people stay apart
