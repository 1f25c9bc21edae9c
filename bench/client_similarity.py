"""What a client's similarity threshold means: FPIR and FNIR of the CompreFace-compatible `similarity`
(`cloud_analyzer/client_similarity.py`) at the thresholds clients use, on held-out faces.

    .venv/bin/python bench/client_similarity.py [--galleries 10,100,300] [--repeats 5]

Faces: `bench/heldout_faces.py` (LFW evaluation identities; the analyzer's front end; templates are float
descriptors, probes base layers decoded, as the API makes them). Each repeat enrols G people who have at
least two photos (one photo each: the template); their other photos are mated probes, every photo of the
people not enrolled a non-mated probe. Each probe is decided as `POST /api/v1/recognition/recognize`
decides it: the best template's cosine, the open-set threshold at ANALYZER_TARGET_FPIR (default 0.01) for
this gallery from the codec's calibration, a face with quality issues never named, and the similarity of
the best subject on the client scale (match 0.60 and unknown 0.40 by default). A client treating
similarity >= x as a match then has FPIR(x) = share of non-mated probes at or above x, and FNIR(x) = share
of mated probes whose best subject is wrong or below x. Writes `bench/results/client_similarity.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.heldout_faces import add_arguments, from_arguments  # noqa: E402
from bench.report import machine_record, write_report  # noqa: E402
from cloud_analyzer.client_similarity import identification_scale  # noqa: E402
from facecodec.codec.profiles import codec_by_name  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "client_similarity.json"
CLIENT_THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def one_gallery(faces, calibration, gallery: int, target_fpir: float, rng: np.random.Generator) -> dict:
    ids = faces.identities
    people, counts = np.unique(ids, return_counts=True)
    enrolled = rng.permutation(people[counts >= 2])[:gallery]
    template_idx = np.array([rng.choice(np.flatnonzero(ids == p)) for p in enrolled])
    templates = faces.templates[template_idx]
    is_template = np.zeros(len(ids), bool)
    is_template[template_idx] = True
    enrolled_set = set(enrolled)
    mated = np.array([i for i in range(len(ids)) if ids[i] in enrolled_set and not is_template[i]])
    non_mated = np.array([i for i in range(len(ids)) if ids[i] not in enrolled_set])
    counts_by_key = {1: len(enrolled)}
    threshold = calibration.threshold(target_fpir, counts_by_key, 1)
    fpir = calibration.fpir(threshold, counts_by_key, 1)
    scale = identification_scale(calibration, counts_by_key, 1, threshold, fpir)

    def decide(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = faces.probes[rows] @ templates.T
        best = scores.argmax(1)
        cos = scores[np.arange(len(rows)), best]
        sims = np.array([scale.decided(c, c >= threshold, ok) for c, ok in zip(cos, faces.quality_ok[rows])])
        return sims, enrolled[best]

    mated_sim, mated_who = decide(mated)
    right = mated_who == ids[mated]
    non_sim, _ = decide(non_mated)
    return {"threshold": threshold, "fpir_expected": fpir, "unknown_at": scale.unknown_at,
            "mated": len(mated), "non_mated": len(non_mated),
            "points": {x: {"fpir": float((non_sim >= x).mean()), "fnir": float((~(right & (mated_sim >= x))).mean())}
                       for x in CLIENT_THRESHOLDS}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--galleries", default="10,100,300")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--target-fpir", type=float, default=0.01)
    add_arguments(parser)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    start = time.time()
    faces = from_arguments(args)
    calibration = codec_by_name(args.profile).open_set_calibration
    rng = np.random.default_rng(0)
    results = []
    for gallery in (int(g) for g in args.galleries.split(",")):
        runs = [one_gallery(faces, calibration, gallery, args.target_fpir, rng) for _ in range(args.repeats)]
        results.append({
            "gallery": gallery, "repeats": len(runs),
            "threshold": round(float(np.mean([r["threshold"] for r in runs])), 4),
            "unknown_at": round(float(np.mean([r["unknown_at"] for r in runs])), 4),
            "fpir_expected": round(float(np.mean([r["fpir_expected"] for r in runs])), 5),
            "mated_probes": int(sum(r["mated"] for r in runs)),
            "non_mated_probes": int(sum(r["non_mated"] for r in runs)),
            "client_thresholds": {str(x): {k: round(float(np.mean([r["points"][x][k] for r in runs])), 5)
                                           for k in ("fpir", "fnir")} for x in CLIENT_THRESHOLDS},
        })
    report = {
        "protocol": __doc__.split("\n\n", 2)[2].strip(),
        "command": " ".join(["python bench/client_similarity.py", *(argv if argv is not None else sys.argv[1:])]),
        "profile": args.profile, "target_fpir": args.target_fpir, "faces": int(len(faces.identities)),
        "people": int(len(set(faces.identities))), "results": results, "seconds": round(time.time() - start, 1),
        "machine": machine_record(),
    }
    write_report(report, args.out)
    print(json.dumps({r["gallery"]: {x: r["client_thresholds"][x] for x in ("0.4", "0.6", "0.85")} for r in results},
                     indent=1))


if __name__ == "__main__":
    main()
