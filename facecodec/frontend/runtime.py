"""One place that opens onnxruntime sessions, so thread counts and providers are set consistently."""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort


def providers() -> list[str]:
    # onnxruntime-gpu is an optional extra; use CUDA only when it is really there.
    available = ort.get_available_providers()
    wanted = os.environ.get("FACECODEC_ORT_PROVIDERS")
    if wanted:
        return [p for p in wanted.split(",") if p in available] or ["CPUExecutionProvider"]
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def open_session(path: Path | str | bytes, varying_shapes: bool = False) -> ort.InferenceSession:
    """`varying_shapes`: inputs change size from call to call (whole frames, motion-gate regions): no
    memory pattern is planned per shape (with the detector's session so: edge peak RSS 426 instead of
    465 MB at the same throughput, bench/edge_throughput.py)."""
    options = ort.SessionOptions()
    options.enable_mem_pattern = not varying_shapes
    threads = int(os.environ.get("FACECODEC_ORT_THREADS", "0"))
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, sess_options=options, providers=providers())
