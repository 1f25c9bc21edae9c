"""How every benchmark ends: its report printed and written as JSON under bench/results/, with the
machine and the installed versions that produced it beside the figures."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata
from pathlib import Path

from facecodec.frontend.runtime import cpu_model

# The packages whose versions move the figures: the inference runtime and the array and image code.
KEY_PACKAGES = ("onnxruntime", "numpy", "opencv-python-headless", "pillow", "torch", "compressai", "redis",
                "grpcio", "fastapi", "uvicorn")


def machine_record() -> dict:
    """CPU model, cores and the installed versions of the packages that set a benchmark's speed."""
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "arch": platform.machine(),
            "python": platform.python_version(), "versions": versions}


def write_report(report: dict, out: Path) -> None:
    print(json.dumps(report, indent=2))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
