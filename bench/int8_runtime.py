"""Would int8 make the edge's two big models faster on this CPU? fp32 against static int8 (QDQ,
per-tensor, onnxruntime's quantiser), one thread each, fastest of 9 runs.

    python bench/int8_runtime.py [--out bench/results/int8_runtime.json]

Only speed is measured: the calibration inputs are random (the scales they give are wrong for real
faces), so the int8 models' outputs mean nothing here. If int8 were clearly faster, its accuracy would
be the next measurement; where it is not, there is nothing to validate.
"""

# ruff: noqa: E402  (bench/ holds scripts: their imports follow the path set-up)
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from report import machine_record, write_report

from facecodec.assets import model_path
from facecodec.frontend.detect import LIBFD_PATH

# name, model, input, the shape it is served at (libfd: a 1080p frame at 1600x900, padded to 32)
MODELS = [("recogniser", model_path("fr_feature.onnx"), "input", (1, 3, 112, 112)),
          ("libfd", LIBFD_PATH, "bgr", (1, 3, 928, 1600))]


class RandomInputs(CalibrationDataReader):
    def __init__(self, name: str, shape: tuple[int, ...], count: int = 4) -> None:
        rng = np.random.default_rng(0)
        self.feeds = iter([{name: rng.random(shape, dtype=np.float32)} for _ in range(count)])

    def get_next(self) -> dict | None:
        return next(self.feeds, None)


def fastest_ms(model: Path, feeds: dict, runs: int = 9) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.log_severity_level = 1, 3
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    return round(min(times) * 1e3, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "int8_runtime.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, input_name, shape in MODELS:
            prepared, quantised = Path(tmp) / f"{name}.onnx", Path(tmp) / f"{name}.int8.onnx"
            # The recogniser's graph defeats symbolic shape inference; its shapes are static anyway.
            quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(quantised), RandomInputs(input_name, shape),
                            quant_format=QuantFormat.QDQ, per_channel=False,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            feeds = {input_name: np.random.default_rng(1).random(shape, dtype=np.float32)}
            fp32, int8 = fastest_ms(Path(model), feeds), fastest_ms(quantised, feeds)
            rows.append({"model": name, "input": list(shape), "fp32_ms": fp32, "int8_ms": int8,
                         "speedup": round(fp32 / int8, 2)})
            print(rows[-1], flush=True)
    write_report({**machine_record(), "threads": 1, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
