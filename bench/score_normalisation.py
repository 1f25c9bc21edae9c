"""Does score normalisation against a cohort of non-enrolled faces help open-set identification?

    .venv/bin/python bench/score_normalisation.py [--faces data/faces]

Adaptive symmetric normalisation (AS-norm, as in speaker and face verification): a score s between
probe p and identity template t becomes 0.5 * ((s - mu_p) / sd_p + (s - mu_t) / sd_t), where mu and sd
are the mean and spread of the top-K scores of p (or t) against a cohort of faces of people never
enrolled: a probe that resembles everyone is discounted. Cohort: 3,000 faces of training identities
(LFW training split, CelebA, AT&T). Evaluated with `facecodec.eval.open_set`'s protocol on the LFW
evaluation identities, as FNIR at fixed FPIR (which needs no threshold model), raw vs normalised.
Writes `bench/results/score_normalisation.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from facecodec import openset
from facecodec.codec.profiles import codec_by_name
from facecodec.datasets import lfw_eval_identities
from facecodec.eval.open_set import draw, load_split
from facecodec.train.data import load_calibration_faces

OUT = Path(__file__).resolve().parent / "results" / "score_normalisation.json"
TOP_K = 100


def cohort_stats(x: np.ndarray, cohort: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    top = np.sort(x @ cohort.T, axis=1)[:, -TOP_K:]
    return top.mean(1), top.std(1) + 1e-6


def fnir_at(mated: np.ndarray, right: np.ndarray, nonmated: np.ndarray, fpir: float) -> float:
    k = int(np.floor(fpir * len(nonmated)))
    t = np.sort(nonmated)[::-1][k]
    return float(1 - np.mean(right & (mated > t)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    codec = codec_by_name("scalable")
    evaluation = {f"lfw/{n}" for n in lfw_eval_identities()}
    lfw = load_split("lfw", args.faces / "lfw.npz", codec, keep=lambda ids: np.isin(ids, list(evaluation)))
    train, _ = load_calibration_faces(args.faces)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(train), 3000, replace=False)
    results = []
    for kind in ("float32", "base_layer"):
        vectors = lfw.descriptors[kind]
        cohort = openset.unit(train[pick]) if kind == "float32" else openset.unit(
            np.stack([codec.base.decode(codec.base.encode(x)) for x in train[pick]]))
        for gallery, enrol in ((1000, 1), (1000, 3), (100, 1)):
            raw = {"mated": [], "right": [], "nonmated": []}
            norm = {"mated": [], "right": [], "nonmated": []}
            for _ in range(args.repeats):
                templates, mated, non_mated = draw(lfw, None, gallery, enrol, 1, rng)
                t = np.stack([openset.identity_template(vectors[idx]) for idx in templates])
                mu_t, sd_t = cohort_stats(t, cohort)
                for groups, is_mated in ((mated, True), ([(None, [g for g in non_mated])], False)):
                    for owner, probe_groups in groups:
                        probes = np.stack([vectors[g[0]] for g in probe_groups if lfw.quality_ok[g[0]]])
                        if not len(probes):
                            continue
                        s = probes @ t.T
                        mu_p, sd_p = cohort_stats(probes, cohort)
                        z = 0.5 * ((s - mu_p[:, None]) / sd_p[:, None] + (s - mu_t[None]) / sd_t[None])
                        for scores, into in ((s, raw), (z, norm)):
                            best = scores.argmax(1)
                            if is_mated:
                                into["mated"] += scores.max(1).tolist()
                                into["right"] += (best == owner).tolist()
                            else:
                                into["nonmated"] += scores.max(1).tolist()
            row = {"descriptor": kind, "gallery": gallery, "enrol_images": enrol}
            for name, r in (("raw", raw), ("as_norm", norm)):
                m, right, n = np.array(r["mated"]), np.array(r["right"]), np.array(r["nonmated"])
                row[name] = {"fnir_at_fpir_1e-2": fnir_at(m, right, n, 1e-2),
                             "fnir_at_fpir_1e-3": fnir_at(m, right, n, 1e-3)}
            results.append(row)
            print(json.dumps(row), flush=True)
    OUT.write_text(json.dumps({"protocol": __doc__.strip().splitlines()[0], "top_k": TOP_K, "cohort": 3000,
                               "machine": "2-core CPU, no GPU", "points": results}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
