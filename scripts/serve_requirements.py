"""The requirements of the service images: pyproject.toml's runtime dependencies without torch.

    python scripts/serve_requirements.py > serve.txt     # then: pip install -c constraints.txt -r serve.txt

The three services never import torch: the face models run on ONNX Runtime, the codec's generator and
enhancement coder are stored as ONNX, and the edge loads CompressAI's entropy coder (its compiled rANS
extension) without running `compressai/__init__.py` (facecodec.codec.entropy). torch, torchvision and
CompressAI's other dependencies are for training and evaluation only (the development install), and would
add some GB to every image. CompressAI itself is installed with `pip install --no-deps` (`--no-deps` below).
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Training-only: never installed in a service image.
TRAINING_ONLY = frozenset({"torch", "torchvision"})
# Installed without their dependencies (which are the training-only ones and their friends).
WITHOUT_DEPENDENCIES = frozenset({"compressai"})


def distribution(requirement: str) -> str:
    return re.split(r"[<>=!~;\[\s]", requirement, maxsplit=1)[0].strip().lower()


def serve_requirements(pyproject: Path = ROOT / "pyproject.toml") -> tuple[list[str], list[str]]:
    """(installed with dependencies, installed without), both as written in pyproject.toml."""
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    with_deps = [d for d in deps if distribution(d) not in TRAINING_ONLY | WITHOUT_DEPENDENCIES]
    without = [d for d in deps if distribution(d) in WITHOUT_DEPENDENCIES]
    return with_deps, without


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-deps", action="store_true", help="print the ones installed without dependencies")
    args = parser.parse_args(argv)
    with_deps, without = serve_requirements()
    print("\n".join(without if args.no_deps else with_deps))


if __name__ == "__main__":
    main()
