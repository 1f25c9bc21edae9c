"""Ablation: base layer trained for recognition only vs multitask (recognition + reconstruction).

    python -m facecodec.eval.multitask_ablation [--faces data/faces] [--images 300]
                                                [--out bench/results/multitask_ablation.json]

Each variant is a whole chain trained the same way, except for the base layer:
- `recognition`: base_learned_r4 (recognition loss + rate) frozen; generator_recognition learned on it;
  enhancement_recognition conditioned on that generator;
- `multitask`: base_multitask (same start, same lambda, trained jointly with its generator, loss adds the
  generator's L1 + identity terms); generator_multitask; enhancement_multitask.
Both enhancement coders have the same size (N=64, 12,000 GPU steps), see facecodec/weights/README.md.

Reports, on LFW evaluation identities: base bytes, verification accuracy (folds 6-10, as
facecodec.eval.rate_accuracy) and TAR@FAR=1e-3, base-only PSNR and identity cosine, the enhancement
bits needed per level, and the BD-rate of multitask against recognition on total bits (base + enh).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecodec.bitstream import CodedFace
from facecodec.codec.base_layer import LearnedBaseLayer
from facecodec.codec.learned_enhancement import LearnedResidualCodec
from facecodec.codec.prediction import GeneratorPrediction
from facecodec.codec.profiles import WEIGHTS
from facecodec.eval.bd_rate import bd_rate
from facecodec.eval.metrics import psnr
from facecodec.eval.rate_accuracy.descriptor_codecs import DescriptorMethod
from facecodec.eval.rate_accuracy.descriptor_rows import base_layer_code, run_descriptor_method
from facecodec.eval.rate_accuracy.evalset import EvalSet, load_eval_set
from facecodec.eval.rate_fidelity import RESULTS, sample

PIXELS = 112 * 112


@dataclass(frozen=True)
class Variant:
    name: str
    base: str
    generator: str
    enhancement: str


VARIANTS = (
    Variant("recognition", "base_learned_r4.npz", "generator_recognition.npz", "enhancement_recognition.npz"),
    Variant("multitask", "base_multitask.npz", "generator_multitask.npz", "enhancement_multitask.npz"),
)


def fidelity(variant: Variant, crops: np.ndarray, descriptors: np.ndarray) -> dict:
    from facecodec.frontend.describe import FaceDescriber

    base = LearnedBaseLayer(WEIGHTS / variant.base)
    generator = GeneratorPrediction(WEIGHTS / variant.generator)
    enhancement = LearnedResidualCodec(WEIGHTS / variant.enhancement)
    base_bytes, generated = [], []
    total = np.zeros((len(crops), enhancement.levels))
    enh = np.zeros_like(total)
    quality = np.zeros_like(total)
    for i, (crop, descriptor) in enumerate(zip(crops, descriptors)):
        payload = base.encode(descriptor)
        base_bytes.append(len(payload))
        generated.append(generator(base.decode(payload)))
        for layer in enhancement.encode(crop, generated[-1]):
            k = layer.level - 1
            enh[i, k] = len(layer.payload)
            total[i, k] = len(CodedFace(0, 0, 112, payload, (layer,)).to_bytes())
            quality[i, k] = psnr(enhancement.decode(generated[-1], (layer,), layer.level), crop)
    generated = np.stack(generated)
    described = FaceDescriber()(generated)
    return {
        "base_payload_bytes": float(np.mean(base_bytes)),
        "base_only_psnr_db": float(np.mean([psnr(g, c) for g, c in zip(generated, crops)])),
        "base_only_identity_cosine": float(np.mean(np.sum(described * descriptors, axis=1))),
        "levels": [
            {"level": k + 1, "enhancement_bpp": float(enh[:, k].mean() * 8 / PIXELS),
             "total_bpp": float(total[:, k].mean() * 8 / PIXELS), "psnr_db": float(quality[:, k].mean())}
            for k in range(enhancement.levels)
        ],
    }


def accuracy(variant: Variant, ev: EvalSet) -> dict:
    code = base_layer_code(LearnedBaseLayer(WEIGHTS / variant.base), 0, 0)
    method = DescriptorMethod("base_layer", variant.base, code, True, "learned")
    row = run_descriptor_method(ev, method)
    return {k: row[k] for k in ("bytes_per_face", "verification_accuracy", "verification_std", "tar_at_far_1e-3")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS / "multitask_ablation.json")
    args = parser.parse_args(argv)

    crops, descriptors = sample(args.faces, args.images)
    ev = load_eval_set(args.faces, None)
    result: dict = {"machine": "2 cores, no GPU", "images": len(crops), "variants": {}}
    for variant in VARIANTS:
        print(f"[ablation] {variant.name}: fidelity on {len(crops)} crops, accuracy on LFW folds 6-10", flush=True)
        result["variants"][variant.name] = {**vars(variant), "accuracy": accuracy(variant, ev),
                                            **fidelity(variant, crops, descriptors)}
    rec, mt = (result["variants"][v.name] for v in VARIANTS)
    for key in ("total_bpp", "enhancement_bpp"):
        result[f"bd_rate_multitask_vs_recognition_{key}"] = bd_rate(
            [p[key] for p in rec["levels"]], [p["psnr_db"] for p in rec["levels"]],
            [p[key] for p in mt["levels"]], [p["psnr_db"] for p in mt["levels"]])
    result["accuracy_change_pp"] = 100 * (mt["accuracy"]["verification_accuracy"]
                                          - rec["accuracy"]["verification_accuracy"])
    result["base_bytes_change"] = mt["base_payload_bytes"] - rec["base_payload_bytes"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "variants"}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
