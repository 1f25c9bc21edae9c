"""ONNX graphs stored with float16 weights: half the bytes in the repository, float32 at run time.

Large float32 initialisers are moved out of the graph into `<prefix>/fp16/<name>` arrays of the same
npz and restored (as float32) when the graph is loaded. Rounding weights to float16 changes outputs by
~1e-3 relative, well inside what the validation figures resolve; graphs stored whole still load.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

MIN_ELEMENTS = 1024  # small tensors (biases, GDN constants) stay in the graph as they are


def compact(onnx_bytes: bytes, prefix: str) -> dict[str, np.ndarray]:
    """npz entries for one graph: `<prefix>_onnx` without its large weights, plus those in float16."""
    model = onnx.load_from_string(onnx_bytes)
    entries: dict[str, np.ndarray] = {}
    for tensor in model.graph.initializer:
        if tensor.data_type == TensorProto.FLOAT and int(np.prod(tensor.dims)) >= MIN_ELEMENTS:
            entries[f"{prefix}/fp16/{tensor.name}"] = numpy_helper.to_array(tensor).astype(np.float16)
            tensor.ClearField("raw_data")
            tensor.ClearField("float_data")
    entries[f"{prefix}_onnx"] = np.frombuffer(model.SerializeToString(), np.uint8)
    return entries


def restore(entries: Mapping[str, np.ndarray], prefix: str) -> bytes:
    """The runnable float32 graph stored under `prefix` (by `compact`, or whole)."""
    model = onnx.load_from_string(entries[f"{prefix}_onnx"].tobytes())
    for tensor in model.graph.initializer:
        key = f"{prefix}/fp16/{tensor.name}"
        if key in entries:
            tensor.raw_data = entries[key].astype(np.float32).tobytes()
    return model.SerializeToString()
