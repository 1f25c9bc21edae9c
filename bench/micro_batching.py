"""Does running several faces per onnxruntime call pay on this CPU? Milliseconds per face, batched vs one
at a time, for the per-face networks of the edge: the recogniser, the generator and the enhancement
encoder's analysis transform.

    .venv/bin/python bench/micro_batching.py [--repeats 30] [--out bench/results/micro_batching.json]

Graphs exported with a batch of 1 are given a free batch dimension here (inputs and outputs, and any
Reshape whose target starts with that 1 copies the batch instead); a batch's outputs are checked against
the same faces run one at a time. One onnxruntime thread per session, as the edge runs them (cores /
workers); random inputs (the cost does not depend on the pixels). The edge's describer batches the faces
of every frame waiting (`EDGE_DESCRIBE_BATCH_FACES`) whatever this says: a GPU gains from it.
"""

# ruff: noqa: E402  (the thread count must be set before onnxruntime is imported)

from __future__ import annotations

import os

os.environ.setdefault("FACECODEC_ORT_THREADS", "1")

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import write_report

from facecodec.assets import model_path
from facecodec.codec.compact_onnx import restore
from facecodec.codec.profiles import WEIGHTS, codec_by_name
from facecodec.frontend.runtime import open_session

OUT = ROOT / "bench" / "results" / "micro_batching.json"
BATCHES = (1, 4, 8, 16)


def free_batch(model_bytes: bytes) -> bytes:
    """The graph with its leading dimension named (any batch): inputs, outputs, and Reshape targets that
    hard-code it (1 -> 0, which ONNX reads as "as the input's")."""
    model = onnx.load_from_string(model_bytes)
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "n"
    targets = {node.input[1] for node in model.graph.node if node.op_type == "Reshape"}
    for tensor in model.graph.initializer:
        if tensor.name in targets:
            shape = numpy_helper.to_array(tensor).copy()
            if shape.size and shape[0] == 1:
                shape[0] = 0
                tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
    for node in model.graph.node:  # Reshape targets held by Constant nodes
        if node.op_type == "Constant" and node.output[0] in targets:
            shape = numpy_helper.to_array(node.attribute[0].t).copy()
            if shape.size and shape[0] == 1:
                shape[0] = 0
                node.attribute[0].t.CopyFrom(numpy_helper.from_array(shape))
    del model.graph.value_info[:]  # shapes inferred for batch 1 would contradict
    return model.SerializeToString()


def per_face_ms(session, inputs: dict[str, np.ndarray], repeats: int) -> dict:  # type: ignore[no-untyped-def]
    """ms per face one at a time and at each batch size; the batched outputs checked against the loop."""
    rng = np.random.default_rng(0)
    faces = {name: rng.random((max(BATCHES), *shape), dtype=np.float32) for name, shape in inputs.items()}
    one = [session.run(None, {k: v[i : i + 1] for k, v in faces.items()})[0] for i in range(max(BATCHES))]
    row: dict = {}
    for batch in BATCHES:
        feed = {k: v[:batch] for k, v in faces.items()}
        out = session.run(None, feed)[0]
        error = float(np.abs(out - np.concatenate(one[:batch])).max())
        start = time.perf_counter()
        for _ in range(repeats):
            if batch == 1:
                for i in range(max(BATCHES)):
                    session.run(None, {k: v[i : i + 1] for k, v in faces.items()})
            else:
                for i in range(0, max(BATCHES), batch):
                    session.run(None, {k: v[i : i + batch] for k, v in faces.items()})
        row[str(batch)] = {"ms_per_face": round((time.perf_counter() - start) / repeats / max(BATCHES) * 1000, 3),
                           "max_abs_diff_vs_one_at_a_time": error}
    one_ms = row["1"]["ms_per_face"]
    row["best_gain_vs_one_at_a_time"] = round(1 - min(v["ms_per_face"] for v in row.values()) / one_ms, 3)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    spec = codec_by_name("scalable").spec
    with np.load(WEIGHTS / spec.enhancement_file) as z:
        analysis = restore(z, "analysis")
    with np.load(WEIGHTS / spec.prediction_file) as z:
        generator = restore(z, "generator")
    networks = {
        "recogniser (fr_feature.onnx)": (model_path("fr_feature.onnx").read_bytes(), {"input": (3, 112, 112)}),
        "generator (decoded base layer -> face)": (generator, {"descriptor": (512,)}),
        "enhancement analysis transform": (analysis, {"x": (3, 112, 112), "x_gen": (3, 112, 112)}),
    }
    report: dict = {"machine": f"{os.cpu_count()}-core CPU ({platform.machine()}), no GPU, one onnxruntime thread",
                    "faces": max(BATCHES), "repeats": args.repeats, "networks": {}}
    for name, (graph, inputs) in networks.items():
        session = open_session(free_batch(graph))
        names = [i.name for i in session.get_inputs()]
        inputs = dict(zip(names, inputs.values())) if len(names) == len(inputs) else inputs
        report["networks"][name] = per_face_ms(session, inputs, args.repeats)
        print(name, json.dumps(report["networks"][name]))
    write_report(report, args.out)


if __name__ == "__main__":
    main()
