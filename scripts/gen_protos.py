"""Generate the Python gRPC stubs for proto/facecoding/v1 (run after editing a .proto).

    python scripts/gen_protos.py [--out DIR]

A test regenerates them into a temporary folder and fails if the committed stubs are stale.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent / "proto"


def generate(out: Path) -> None:
    well_known = str(resources.files("grpc_tools") / "_proto")
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "facecoding" / "v1").glob("*.proto"))
    args = ["protoc", f"-I{ROOT}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}",
            f"--pyi_out={out}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT)
    generate(parser.parse_args().out)
    sys.exit(0)
