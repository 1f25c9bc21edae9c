"""The descriptor-domain rows: the quantisers and every base layer (real rANS payloads), each fitted on
training faces only and scored on the evaluation set."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facecodec.eval.rate_accuracy.descriptor_codecs import (
    Coded,
    DescriptorMethod,
    fixed_size,
    int8_roundtrip,
    int8_scale,
    pca_int8,
    product_quantiser,
)
from facecodec.eval.rate_accuracy.evalset import DIM, EVAL_FOLDS, EvalSet
from facecodec.eval.rate_accuracy.scoring import score


def profile_ids(weights_file: str, default: tuple[int, int], profile: str | None = None) -> tuple[int, int, bool]:
    """(model_id, rate_id, in_profile) for a base-layer weights file, from PROFILES where listed
    (from `profile` when given)."""
    from facecodec.codec.profiles import PROFILES

    for spec in [PROFILES[profile]] if profile else PROFILES.values():
        for rate_id, name in spec.base_files.items():
            if name == weights_file:
                return spec.model_id, rate_id, True
    return default[0], default[1], False


def base_layer_code(codec, model_id: int, rate_id: int) -> Callable[[np.ndarray], Coded]:
    from facecodec.bitstream import CodedFace

    def code(x: np.ndarray) -> Coded:
        payloads = [codec.encode(d) for d in x]
        decoded = np.stack([codec.decode(p) for p in payloads])
        sizes = np.array([len(p) for p in payloads])
        containers = np.array([len(CodedFace(model_id, rate_id, 112, base=p).to_bytes()) for p in payloads])
        return Coded(decoded, sizes, containers)

    return code


def base_layer_methods(weights: Path) -> tuple[list[DescriptorMethod], list[str]]:
    from facecodec.codec.base_layer import LearnedBaseLayer, ScalarBaseLayer

    methods, skipped = [], []
    scalar = weights / "base_scalar.npz"
    if scalar.exists():
        codec = ScalarBaseLayer(scalar)
        model_id, rate_id, listed = profile_ids(scalar.name, (0, 0))
        methods.append(DescriptorMethod(
            "base_layer_scalar", codec.name, base_layer_code(codec, model_id, rate_id), True, "base_layer",
            "rANS payload; Gaussian table scale fitted on training faces",
            {"model_id": model_id, "rate_id": rate_id, "in_profile": listed, "weights": scalar.name},
        ))
    else:
        skipped.append(f"base_layer_scalar: {scalar} not found (run python -m facecodec.train.baseline)")
    for path in sorted(weights.glob("base_learned_r*.npz"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0)):
        rate = int(re.sub(r"\D", "", path.stem) or 0)
        sidecar = path.with_suffix(".json")
        # As served (profile scalable: arithmetic coder, <= 1 byte of termination), and with the rANS
        # coder of model ids 2 and 4 (~6 bytes of flush per face): the same symbols, so the same accuracy.
        for coder, method, spec_name in (("arithmetic", "base_layer_learned", "scalable"),
                                         ("rans", "base_layer_learned_rans", "learned")):
            codec = LearnedBaseLayer(path, coder)
            name = json.loads(sidecar.read_text()).get("name", codec.name) if sidecar.exists() else codec.name
            model_id, rate_id, listed = profile_ids(path.name, (0, rate), spec_name)
            methods.append(DescriptorMethod(
                method, name, base_layer_code(codec, model_id, rate_id), True, "learned",
                f"{coder}-coded payload of the learned base layer (trained on training faces only)",
                {"model_id": model_id, "rate_id": rate_id, "in_profile": listed, "weights": path.name,
                 "coder": coder},
            ))
    return methods, skipped


def descriptor_methods(train: np.ndarray, weights: Path) -> tuple[list[DescriptorMethod], list[str]]:
    t0 = time.time()
    int8 = int8_scale(train)
    methods = [
        DescriptorMethod("float32", "512 x f32", fixed_size(lambda x: x, 4 * DIM), False, "descriptor"),
        DescriptorMethod("float16", "512 x f16", fixed_size(lambda x: x.astype(np.float16).astype(np.float32),
                                                            2 * DIM), False, "descriptor"),
        DescriptorMethod(
            "int8", "512 x int8, per-dim scale", fixed_size(lambda x: int8_roundtrip(x, int8), DIM), False,
            "descriptor",
            "scale fitted on training faces (which include LFW folds 1-5 identities): the 10-fold figure "
            "is reported as for the other non-learned rows, but only the folds 6-10 figure is strictly clean",
        ),
        DescriptorMethod("sign", "512 bits", fixed_size(np.sign, DIM // 8), False, "descriptor",
                         "1 bit per dimension; cosine of sign vectors = 1 - 2 x Hamming / 512"),
        DescriptorMethod("pca_int8", "PCA-64 + int8", fixed_size(pca_int8(train, 64), 64), True, "descriptor",
                         "PCA and int8 scales fitted on training faces"),
    ]
    for nbytes in (32, 16, 8):
        print(f"  fitting PQ-{nbytes}B ({nbytes} x 256 centroids)...", flush=True)
        methods.append(DescriptorMethod(
            "pq", f"{nbytes} x 8 bit, {DIM // nbytes}-d sub-vectors",
            fixed_size(product_quantiser(train, nbytes), nbytes), True, "pq",
            "k-means codebooks (256 per sub-vector) fitted on training faces; symmetric (both sides decoded) scoring",
        ))
    base, skipped = base_layer_methods(weights)
    print(f"  fitted quantisers in {time.time() - t0:.1f}s; base layers: {[m.setting for m in base]}", flush=True)
    return methods + base, skipped


def run_descriptor_method(ev: EvalSet, m: DescriptorMethod) -> dict:
    t0 = time.time()
    tenfold = not m.fitted
    needed = np.unique(np.concatenate([
        ev.eval_idx, ev.pair_images(range(1, 11) if tenfold else EVAL_FOLDS),
    ]))
    coded = m.code(ev.faces.descriptors[needed])
    position = {int(i): p for p, i in enumerate(needed)}
    decoded = {int(i): coded.descriptors[position[int(i)]] for i in needed}
    on_eval = np.array([position[int(i)] for i in ev.eval_idx])
    row = {
        "method": m.method,
        "setting": m.setting,
        "family": m.family,
        "bytes_per_face": float(coded.payload_bytes[on_eval].mean()),
        "container_bytes_per_face": float(coded.container_bytes[on_eval].mean()),
        "bytes_per_face_max": int(coded.payload_bytes[on_eval].max()),
        "learned_or_fitted": m.fitted,
    }
    row |= score(ev, decoded, tenfold, ev.eval_idx)
    row |= {"protocol_note": m.note} if m.note else {}
    row |= m.extra
    row["seconds"] = round(time.time() - t0, 1)
    return row
