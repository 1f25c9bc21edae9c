"""Rate-accuracy benchmark: bytes per face against recognition accuracy, for every way of sending a face.

    python -m facecodec.eval.rate_accuracy [--faces data/faces] [--out bench/results/rate_accuracy.json]
                                           [--limit N] [--skip-images] [--tenfold-images]

Rows:
- descriptor quantisers: float32, float16, int8, sign, PCA-64 + int8, product quantisation (32/16/8 B);
- base layers: the scalar baseline and every learned base layer in facecodec/weights (real rANS payloads);
- compress-then-analyse: the aligned 112x112 crop as JPEG/WebP/AVIF, and the detector's box region as
  JPEG at native resolution, decoded and run through the front end again.

Protocol (docs: /work/shared/datasets/lfw/splits/README.md): anything fitted (PCA, PQ, int8 and
base-layer tables, learned codecs) sees only training faces (LFW train identities + CelebA + AT&T).
`verification_accuracy` is 5-fold cross-validated accuracy on LFW View-2 folds 6-10 for every row;
rows with nothing learned on LFW add `verification_accuracy_10fold` over all 10 folds. TAR at
FAR=1e-3 is all-vs-all over the evaluation images, rank-1 uses the first image (sorted key) of each
evaluation identity as gallery. Image rows are re-described on the folds 6-10 pair images only (see
each row's `protocol_note`); their descriptors are cached in data/eval_cache/ so a rerun skips them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from facecodec.eval.rate_accuracy.descriptor_rows import descriptor_methods, run_descriptor_method
from facecodec.eval.rate_accuracy.evalset import EVAL_FOLDS, WEIGHTS, EvalSet, load_eval_set
from facecodec.eval.rate_accuracy.image_rows import (
    ImageRowContext,
    crop_rows,
    detection_rows,
    float32_reference,
    pixel_rows,
)
from facecodec.eval.rate_accuracy.plots import plot
from facecodec.eval.rate_accuracy.summary import print_row, summarise
from facecodec.frontend import FaceFrontEnd
from facecodec.train.data import load_training_faces


def protocol_text(ev: EvalSet, limit: int | None) -> str:
    n_eval_pairs = int(ev.pairs_in(EVAL_FOLDS).sum())
    text = (
        f"verification_accuracy: LFW View-2 folds 6-10 ({n_eval_pairs} pairs), 5-fold cross-validated "
        "(threshold maximising accuracy on 4 folds, tested on the 5th); verification_accuracy_10fold (rows "
        f"with nothing learned on LFW): standard 10-fold over all {len(ev.same)} pairs. TAR at FAR=1e-3: "
        f"all-vs-all (upper triangle) cosine scores over {len(ev.eval_idx)} evaluation-identity images; "
        "rank1: gallery = first image (sorted key) of every evaluation identity, probes = the other images "
        "of identities with >= 2 images. Anything fitted (PCA, PQ, int8 scales, base-layer tables, learned "
        "codecs) used training faces only (LFW train identities + CelebA + AT&T)."
    )
    if limit is not None:
        text = (f"LIMITED DEVELOPMENT RUN (--limit {limit}: {limit} pairs per fold; TAR/rank-1 over the limited "
                "pairs' images only) - not a result. ") + text
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m facecodec.eval.rate_accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/rate_accuracy.json"))
    parser.add_argument("--plot", type=Path, default=None, help="default: --out with .png")
    parser.add_argument("--limit", type=int, default=None, help="pairs per fold (development runs)")
    parser.add_argument("--skip-images", action="store_true", help="skip the compress-then-analyse rows")
    parser.add_argument("--tenfold-images", action="store_true",
                        help="also re-describe folds 1-5 pair images for the image rows' 10-fold figure")
    parser.add_argument("--cache", type=Path, default=Path("data/eval_cache"))
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--workers", type=int, default=2,
                        help="processes re-describing image rows (1 onnxruntime thread each); 1 = in-process")
    args = parser.parse_args(argv)
    if not (args.faces / "lfw.npz").exists():
        raise SystemExit(f"{args.faces / 'lfw.npz'} not found: run python -m facecodec.train.prepare first")

    t0 = time.time()
    print("loading faces...", flush=True)
    ev = load_eval_set(args.faces, args.limit)
    train = load_training_faces(args.faces).descriptors
    print(f"  {len(ev.faces.keys)} LFW images, {len(ev.same)} pairs, {len(ev.eval_idx)} identification images, "
          f"{len(train)} training descriptors", flush=True)

    print("descriptor rows:", flush=True)
    methods, skipped = descriptor_methods(train, args.weights)
    points = []
    for m in methods:
        points.append(run_descriptor_method(ev, m))
        print_row(points[-1])

    if args.skip_images:
        skipped.append("image rows: --skip-images")
    else:
        folds = range(1, 11) if args.tenfold_images else EVAL_FOLDS
        ctx = ImageRowContext(ev, ev.pair_images(folds), ev.pair_images(EVAL_FOLDS), args.tenfold_images,
                              args.cache, FaceFrontEnd(), args.workers)
        print(f"image rows ({len(ctx.images)} images each, cache {args.cache}):", flush=True)
        reference = float32_reference(ctx)
        for row in crop_rows(ctx) + pixel_rows(ctx) + detection_rows(ctx):
            row["float32_same_images"] = reference
            points.append(row)

    result = {
        "dataset": "LFW deep-funneled (subset with the full View-2 protocol), descriptors from lfw.npz "
                   "(facecodec.train.prepare); evaluation identities = View-2 folds 6-10",
        "protocol": protocol_text(ev, args.limit),
        "machine": "2 cores, no GPU",
        "limited": args.limit is not None,
        "points": points,
        "summary": summarise(points),
        "skipped": skipped,
        "seconds": round(time.time() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    plot_path = args.plot or args.out.with_suffix(".png")
    title = "Rate vs accuracy (LFW folds 6-10, 5-fold CV)" + (" - LIMITED RUN" if args.limit else "")
    plot(points, plot_path, title)
    print(f"wrote {args.out} and {plot_path} in {time.time() - t0:.0f}s", flush=True)
    print(json.dumps(result["summary"], indent=2), flush=True)

