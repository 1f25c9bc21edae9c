"""What coding one face costs the edge, per option: CPU time per stage and bytes kept per face.

    python bench/edge_encode_cost.py [--faces 200] [--out bench/results/edge_encode_cost.json]

Faces: aligned crops of LFW evaluation identities (`data/faces`, `python -m facecodec.train.prepare`).
Stages are timed one face at a time, in this process, with onnxruntime's default threads (as the
edge runs them); the machine (cores) is recorded beside the figures. Options compared:

- `eager_all`: every enhancement level coded at capture (EDGE_ENHANCEMENT_CODING=eager);
- `eager_top`: only the top level at capture (the cheapest eager option that still serves full quality);
- `deferred`: the crop kept as lossless WebP, a level coded when first fetched (the default): capture
  pays only the WebP; the first viewer of a level pays generator + analysis + that level.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_encoder.pipeline import lossless  # noqa: E402
from facecodec.codec.profiles import codec_by_name  # noqa: E402
from facecodec.frontend import FaceFrontEnd  # noqa: E402
from facecodec.train.data import load_evaluation_faces  # noqa: E402


def timed(fn, items) -> tuple[list, float]:  # type: ignore[no-untyped-def]
    """Results and the median ms per item."""
    fn(items[0])  # warm-up: lazy sessions, caches
    out, times = [], []
    for item in items:
        t = time.perf_counter()
        out.append(fn(item))
        times.append((time.perf_counter() - t) * 1000)
    return out, round(statistics.median(times), 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces-root", type=Path, default=ROOT / "data" / "faces")
    parser.add_argument("--faces", type=int, default=200)
    parser.add_argument("--profile", default="scalable")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "edge_encode_cost.json")
    args = parser.parse_args(argv)

    faces = load_evaluation_faces(args.faces_root)
    rows = np.random.default_rng(0).choice(len(faces.crops), min(args.faces, len(faces.crops)), replace=False)
    crops = list(faces.crops[rows])
    codec = codec_by_name(args.profile)
    front_end = FaceFrontEnd()
    top = codec.levels
    print(f"{len(crops)} faces, profile {codec.spec.name} (model {codec.spec.model_id}, rate {codec.rate_id})")

    descriptors, describe_ms = timed(lambda c: front_end.describe(c[None])[0], crops)
    bases, base_ms = timed(codec.encode_base, descriptors)
    predictions, generator_ms = timed(lambda b: codec.prediction(codec.base.decode(b.base)), bases)
    pairs = list(zip(crops, predictions))
    _, analysis_ms = timed(lambda p: codec.enhancement._run(  # the analysis transform alone
        codec.enhancement.analysis, x=codec.enhancement._image(p[0]), x_gen=codec.enhancement._image(p[1])), pairs)
    eager_all, eager_all_ms = timed(lambda p: codec.enhancement.encode(p[0], p[1]), pairs)
    eager_top, eager_top_ms = timed(lambda p: codec.enhancement.encode_levels(p[0], p[1], (top,)), pairs)
    sources, lossless_ms = timed(lossless, crops)
    _, decode_source_ms = timed(lambda s: np.asarray(Image.open(io.BytesIO(s)).convert("RGB")), sources)
    items = list(zip(crops, bases))
    _, first_fetch_ms = timed(lambda cb: codec.add_enhancement(cb[0], cb[1], top), items)

    def kept(layer_lists: list) -> float:  # type: ignore[type-arg]
        return float(np.mean([len(dataclasses.replace(b, enhancements=tuple(layers)).to_bytes())
                              for b, layers in zip(bases, layer_lists)]))

    base_bytes = float(np.mean([len(b.to_bytes()) for b in bases]))
    level_bytes = np.mean([[len(layer.payload) for layer in layers] for layers in eager_all], axis=0)
    common_ms = describe_ms + base_ms  # what every option pays per face at capture
    result = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, no GPU; onnxruntime default threads; "
                   "median ms per face, one face at a time",
        "faces": len(crops),
        "profile": codec.spec.name,
        "stages_ms": {
            "describe (recogniser)": describe_ms, "base layer encode": base_ms,
            "generator (base-only face)": generator_ms, "enhancement analysis transform": analysis_ms,
            "enhancement, all levels": eager_all_ms, "enhancement, top level only": eager_top_ms,
            "lossless WebP of the crop": lossless_ms, "lossless WebP decode": decode_source_ms,
            "first fetch of a level (decode base, generator, analysis, one level)": first_fetch_ms,
        },
        "options": {
            "eager_all": {"capture_ms": round(common_ms + generator_ms + eager_all_ms, 2),
                          "kept_bytes": round(kept(eager_all), 1), "first_view_ms": 0.0},
            "eager_top": {"capture_ms": round(common_ms + generator_ms + eager_top_ms, 2),
                          "kept_bytes": round(kept(eager_top), 1), "first_view_ms": 0.0,
                          "levels_servable": [top]},
            "deferred": {"capture_ms": round(common_ms + lossless_ms, 2),
                         "kept_bytes": round(base_bytes + float(np.mean([len(s) for s in sources])), 1),
                         "first_view_ms": round(first_fetch_ms + decode_source_ms, 2)},
        },
        "layer_payload_bytes_per_level": [round(float(b), 1) for b in level_bytes],
        "base_container_bytes": round(base_bytes, 1),
        "notes": "capture_ms = recogniser + base layer + the option's enhancement work (detection, landmarks "
                 "and alignment are the same for every option and not included). kept_bytes = what the edge "
                 "stores per face (the container with its layers, or the base-only container + the lossless crop). "
                 "deferred codes a level only for faces someone views and keeps it for the next viewer.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
