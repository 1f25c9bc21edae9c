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
            self.session = open_session(restore(z, "generator"))

    def __call__(self, descriptor: np.ndarray) -> np.ndarray:
        x = np.asarray(descriptor, np.float32).reshape(1, -1)
        image = self.session.run(None, {"descriptor": x})[0][0]  # 3xHxW in [0, 1]
        return np.clip(np.round(image.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
