"""Command-line options and data split shared by the GPU-era trainers (texture, enhancement)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facecodec.train.data import Faces, load_training_faces
from facecodec.train.feature_codec import split_identities

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
VAL_FACES = 500


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-minutes", type=float, default=0, help="checkpoint and stop after this long")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda")
    parser.add_argument("--limit", type=int, default=0, help="use the first N faces only (smoke runs)")
    parser.add_argument("--faces", type=Path, default=Path("data/faces"),
                        help="prepared cache folder or a facecodec.train.pack file")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--export", action="store_true", help="export the checkpoint and validate (CPU)")


def training_split(args: argparse.Namespace) -> tuple[Faces, np.ndarray, np.ndarray, np.ndarray]:
    """Training faces, the validation mask (held-out training identities), train rows, val rows."""
    faces = load_training_faces(args.faces)
    if args.limit:
        faces = faces.subset(np.arange(len(faces.crops)) < args.limit)
    val_mask = split_identities(faces.identities)
    return faces, val_mask, np.flatnonzero(~val_mask), np.flatnonzero(val_mask)[:VAL_FACES]
