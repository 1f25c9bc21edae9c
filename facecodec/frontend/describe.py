"""512-d face descriptor (faceplugin ArcFace-style recogniser, onnxruntime), L2-normalised."""

from __future__ import annotations

import numpy as np

from facecodec.assets import model_path
from facecodec.frontend.runtime import open_session

DESCRIPTOR_DIM = 512
# Names the feature space: templates and probes of different models are never compared.
DESCRIPTOR_MODEL = "faceplugin-fr_feature-512"


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class FaceDescriber:
    def __init__(self) -> None:
        self.session = open_session(model_path("fr_feature.onnx"), name="recogniser")
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """Descriptors (N x 512, unit norm) for N aligned 112x112 RGB uint8 crops."""
        if crops.ndim == 3:
            crops = crops[None]
        x = ((crops.astype(np.float32) - 127.0) / 128.0).transpose(0, 3, 1, 2)
        # The graph was exported with batch 1; run per face rather than re-export it.
        out = np.concatenate([self.session.run(None, {self.input_name: x[i : i + 1]})[0] for i in range(len(x))])
        return normalise(out.reshape(len(x), -1))
