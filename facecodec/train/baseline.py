"""Fit the baseline profile's two tiny parameters from training faces only.

    python -m facecodec.train.baseline --faces data/faces

- base layer: the Gaussian scale of descriptor values, frozen into a rANS table (step 1/256, i.e.
  int8-like resolution on unit-norm descriptors);
- prediction: the mean aligned training face.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facecodec.codec.base_layer import ScalarBaseLayer
from facecodec.train.data import load_training_faces

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
STEP = 1 / 256


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args(argv)
    faces = load_training_faces(args.faces)
    sigma = float(faces.descriptors.std())
    ScalarBaseLayer.export(args.out / "base_scalar.npz", STEP, sigma)
    mean_face = np.round(faces.crops.astype(np.float64).mean(0)).astype(np.uint8)
    np.savez_compressed(args.out / "mean_face.npz", mean_face=mean_face)
    print(f"{len(faces.descriptors)} training faces: sigma={sigma:.5f}; wrote base_scalar.npz, mean_face.npz")


if __name__ == "__main__":
    main()
