"""1:1 verification (`POST /v1/verify`): the false-accept rate of its thresholds on held-out faces.

    .venv/bin/python bench/verify_far.py [--people 800] [--per-person 3]

The analyzer sets the verification threshold from the codec's open-set calibration (impostor tails of
*training* identities: `cloud_analyzer.face_ops.verification_threshold`, ANALYZER_VERIFY_FAR). This
measures what that threshold does on LFW *evaluation* identities (`bench/heldout_faces.py`), as the API
compares two uploaded photos: the reference's float descriptor against the probe's base layer decoded.
Every ordered pair of photos of two different people is an impostor trial (FAR = share accepted);
every ordered pair of two photos of one person a genuine trial (FRR = share refused). Figures for all
faces, and for pairs where both faces pass the quality gate (the API never accepts a pair with issues).
Writes `bench/results/verify_far.json`, and the held-out FAR of each threshold into
`cloud_analyzer/verification_heldout.json` (per profile and rate), which `POST /v1/verify` quotes.
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
from cloud_analyzer.face_ops import verification_threshold  # noqa: E402
from facecodec.codec.profiles import codec_by_name  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "verify_far.json"
SHIPPED = Path(__file__).resolve().parents[1] / "cloud_analyzer" / "verification_heldout.json"
TARGETS = (1e-2, 1e-3, 1e-4, 1e-5)


def rates(scores: np.ndarray, same: np.ndarray, threshold: float) -> dict:
    accepted = scores >= threshold
    impostor, genuine = int((~same).sum()), int(same.sum())
    false_accepts = int((accepted & ~same).sum())
    return {"impostor_pairs": impostor, "false_accepts": false_accepts,
            "far": false_accepts / impostor if impostor else None,
            "genuine_pairs": genuine, "frr": float((~accepted & same).sum() / genuine) if genuine else None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    start = time.time()
    faces = from_arguments(args)
    scores = faces.templates @ faces.probes.T  # reference i (float) vs probe j (base layer)
    same = faces.identities[:, None] == faces.identities[None, :]
    off_diagonal = ~np.eye(len(scores), dtype=bool)  # a photo is not compared with itself
    both_ok = faces.quality_ok[:, None] & faces.quality_ok[None, :]
    codec = codec_by_name(args.profile)
    calibration = codec.open_set_calibration
    points = []
    for target in TARGETS:
        threshold, calibrated = verification_threshold(calibration, target)
        points.append({
            "target_far": target, "threshold": round(threshold, 6), "calibration_far": calibrated,
            "all_faces": rates(scores[off_diagonal], same[off_diagonal], threshold),
            "quality_passed": rates(scores[off_diagonal & both_ok], same[off_diagonal & both_ok], threshold),
        })
    report = {
        "protocol": __doc__.split("\n\n", 2)[2].strip(),
        "command": " ".join(["python bench/verify_far.py", *(argv if argv is not None else sys.argv[1:])]),
        "profile": args.profile, "people": int(len(set(faces.identities))), "faces": int(len(faces.identities)),
        "quality_rejected_share": round(float(1 - faces.quality_ok.mean()), 4),
        "extraction_s": round(faces.seconds, 1), "faces_from_cache": faces.seconds == 0,
        "seconds": round(time.time() - start, 1),
        "points": points, "machine": machine_record(),
    }
    write_report(report, args.out)
    shipped = json.loads(SHIPPED.read_text()) if SHIPPED.exists() else {}
    shipped[f"{args.profile}/{codec.rate_id}"] = {
        "source": f"{report['command']} -> bench/results/{args.out.name}", "people": report["people"],
        "points": [{"threshold": p["threshold"], "far_held_out": p["all_faces"]["far"],
                    "impostor_pairs": p["all_faces"]["impostor_pairs"]} for p in points]}
    SHIPPED.write_text(json.dumps(shipped, indent=2) + "\n")


if __name__ == "__main__":
    main()
