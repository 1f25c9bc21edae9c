"""Does the edge's detector change what the cloud compares? Enrolment photos go through the cloud's front
end (RFB-320 boxes), camera faces through the edge's (libfd boxes); the same 68-point landmarks, 5-point
alignment and recogniser follow both. Measured on LFW View-2 pairs of evaluation identities.

    .venv/bin/python bench/detector_matching.py [--folds 6,7,8,9,10] [--out bench/results/detector_matching.json]

Per image: the largest face each front end finds (the centred fallback box `facecodec.train.prepare`
uses when it finds none), and the cosine between the two descriptors. Per pair: verification accuracy,
cross-validated over the folds (threshold fitted on the others), with both images through rfb, both
through libfd, and the first through rfb and the second through libfd (enrolled vs seen by a camera).
Single-threaded on this 2-core CPU.
"""

# ruff: noqa: E402  (the thread count must be set before onnxruntime is imported)

from __future__ import annotations

import os

os.environ.setdefault("FACECODEC_ORT_THREADS", "1")

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import write_report

from facecodec.datasets import dataset_root, lfw_pairs
from facecodec.eval.metrics import unit, verification_accuracy_cv
from facecodec.frontend import FaceFrontEnd, decode_image
from facecodec.train.prepare import aligned_crop

OUT = ROOT / "bench" / "results" / "detector_matching.json"


def descriptor(front_end: FaceFrontEnd, rgb: np.ndarray) -> tuple[np.ndarray, bool]:
    """The unit descriptor of the largest face, and whether the detector found one."""
    crop, detected, _ = aligned_crop(front_end, rgb, "lfw")
    return unit(front_end.describe(crop[None]))[0], detected


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", default="6,7,8,9,10", help="View-2 folds of evaluation identities")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    folds = [int(f) for f in args.folds.split(",")]
    pairs = [p for p in lfw_pairs() if p.fold in folds]
    keys = sorted({k for p in pairs for k in (p.a, p.b)})
    front_ends = {"rfb": FaceFrontEnd(), "libfd": FaceFrontEnd(detector="libfd")}
    found = {name: 0 for name in front_ends}
    seconds = {name: 0.0 for name in front_ends}
    vectors: dict[str, dict[str, np.ndarray]] = {name: {} for name in front_ends}
    images = dataset_root() / "lfw" / "images"
    for n, key in enumerate(keys):
        rgb = decode_image((images / f"{key}.jpg").read_bytes())
        for name, front_end in front_ends.items():
            start = time.perf_counter()
            vectors[name][key], hit = descriptor(front_end, rgb)
            seconds[name] += time.perf_counter() - start
            found[name] += hit
        if n % 500 == 0:
            print(f"{n}/{len(keys)} images", file=sys.stderr)
    cosines = np.array([float(vectors["rfb"][k] @ vectors["libfd"][k]) for k in keys])
    labels = np.array([p.same for p in pairs])
    fold_of = np.array([p.fold for p in pairs])
    accuracy = {}
    for first, second in (("rfb", "rfb"), ("libfd", "libfd"), ("rfb", "libfd")):
        scores = np.array([vectors[first][p.a] @ vectors[second][p.b] for p in pairs])
        mean, std = verification_accuracy_cv(scores, labels, fold_of)
        accuracy[f"{first} vs {second}"] = {"accuracy": round(mean, 4), "std": round(std, 4)}
    report = {
        "machine": "2-core CPU, no GPU, one onnxruntime thread",
        "folds": folds, "pairs": len(pairs), "images": len(keys),
        "found": {name: round(found[name] / len(keys), 4) for name in front_ends},
        "ms_per_image": {name: round(seconds[name] / len(keys) * 1000, 1) for name in front_ends},
        "descriptor_cosine_rfb_vs_libfd": {"mean": round(float(cosines.mean()), 4),
                                           "p5": round(float(np.percentile(cosines, 5)), 4),
                                           "min": round(float(cosines.min()), 4)},
        "verification": accuracy,
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
