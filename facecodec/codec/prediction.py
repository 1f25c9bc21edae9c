"""What the decoder can rebuild from the base layer alone: the prediction the enhancement layer refines.

- `MeanFacePrediction`: the mean aligned training face (baseline; ignores the descriptor).
- `GeneratorPrediction`: a learned generator, descriptor -> aligned face (feature-level texture
  reconstruction), served with onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class Prediction(Protocol):
    name: str

    def __call__(self, descriptor: np.ndarray) -> np.ndarray:
        """An aligned crop (HxWx3 uint8) predicted from a decoded descriptor."""
        ...


class MeanFacePrediction:
    name = "mean-face"

    def __init__(self, path: Path) -> None:
        with np.load(path) as z:
            self.face = z["mean_face"].astype(np.uint8)

    def __call__(self, descriptor: np.ndarray) -> np.ndarray:
        return self.face.copy()


class GeneratorPrediction:
    name = "generator"

    def __init__(self, path: Path) -> None:
        from facecodec.codec.compact_onnx import restore
        from facecodec.frontend.runtime import open_session

        with np.load(path) as z:
            self.session = open_session(restore(z, "generator"), name=f"{path.stem}.generator")

    def __call__(self, descriptor: np.ndarray) -> np.ndarray:
        return self.batch(np.asarray(descriptor, np.float32).reshape(1, -1))[0]

    def batch(self, descriptors: np.ndarray) -> np.ndarray:
        """N decoded descriptors -> N x H x W x 3 uint8 crops (the same as one at a time)."""
        images = self.session.run(None, {"descriptor": np.asarray(descriptors, np.float32)})[0]  # N x 3 x H x W
        return np.clip(np.round(images.transpose(0, 2, 3, 1) * 255.0), 0, 255).astype(np.uint8)
