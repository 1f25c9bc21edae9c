"""The front end's recogniser as a frozen torch module, for identity losses during training.

The faceplugin ONNX graph ends in `Reshape(x, [1, -1])`, which only works for batch 1; we rewrite that
shape to `[-1, 512]` and convert with onnx2torch. The converted network matches onnxruntime to 1e-6
(checked in tests/test_recogniser.py), so a loss on it is a loss on the recogniser we serve.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from facecodec.assets import model_path
from facecodec.frontend.describe import DESCRIPTOR_DIM


def _batch_free(model: onnx.ModelProto) -> onnx.ModelProto:
    initialisers = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Reshape" and node.input[1] in initialisers:
            shape = initialisers[node.input[1]]
            if numpy_helper.to_array(shape).tolist() == [1, -1]:
                shape.CopyFrom(numpy_helper.from_array(np.array([-1, DESCRIPTOR_DIM], np.int64), shape.name))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "n"
    return model


class Recogniser(nn.Module):
    """RGB images in [0, 1] (N x 3 x 112 x 112) -> unit-norm descriptors (N x 512). Frozen."""

    def __init__(self) -> None:
        super().__init__()
        from onnx2torch import convert

        self.net = convert(_batch_free(onnx.load(str(model_path("fr_feature.onnx")))))
        self.net.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> Recogniser:
        return super().train(False)  # always inference behaviour, even inside a training model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images * 255.0 - 127.0) / 128.0  # the front end's preprocessing (describe.py)
        return nn.functional.normalize(self.net(x), dim=-1)
