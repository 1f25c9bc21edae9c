"""Open-set identification benchmark per held-out split: the default operating point, FNIR at fixed FPIR.

    python -m facecodec.eval.open_set --faces data/faces [--repeats 5]

Needs the sets run through `python -m facecodec.train.prepare` as `facecodec.train.calibrate` says
(lfw, cfp, fgnet, celeba, att, glint; and `utk --limit 9000` for galleries of 10,000). Writes
`bench/results/open_set.json` and, for the analyzer to quote next to each decision, the default points
in `cloud_analyzer/open_set_heldout.json`.

Protocol (as NIST's 1:N evaluations): a gallery of G identities, each enrolled from E photos (their
normalised mean is the identity's one template, made from the float descriptor as the analyzer does;
probes are decoded base layers, as the analyzer sees them); *mated* probes are other photos of enrolled
people, *non-mated* probes are photos of people never enrolled. A probe of F frames fuses F photos of
one person (`facecodec.openset.identity_template`). FPIR = share of non-mated probes named as anyone;
FNIR = share of mated probes not named as the right person (wrong name, or nobody). Faces the quality
gate rejects (`facecodec.frontend.quality`) are never enrolled and never matched: a rejected mated
probe counts as a miss, a rejected non-mated probe as correctly not named. Images in which no face was
detected are left out (a camera sends none). The threshold of each probe is the analyzer's: from the
committed calibration, for a 1% target FPIR, the gallery's make-up, the probe's frames and quality band.

Splits (`facecodec.eval.splits`; no calibration saw any of their people): `lfw` (LFW View-2 folds
6-10), `cfp_heldout` (CFP 251-500), `fgnet_adults` and `fgnet_children` (odd-numbered FG-NET people at
18 or older / under 18), `celeba_heldout` (odd CelebA identities). Up to half of a split's people are
in the gallery (those with enough photos enrolled and probed first, the rest distractors that are never
probed); the others are strangers, every photo of them a non-mated probe. The gallery is filled up to G
with LFW evaluation people (not for `lfw`; never one who is also in the split, by name) and then with
single photos of UTKFace adults, each counted as one person (so at G = 10,000 most identities have one
photo whatever E is: the point's `enrol_counts` says). Each configuration is repeated over `--repeats`
random draws and the probes pooled.

Also measured: quality-weighted templates (`weighted_fnir_at_fpir_1e-2`: enrolment photos weighted by
their quality score), and enrolment guidance on CFP 251-500 (`enrolment`: FNIR at FPIR 1% and at the
default point for frontal/profile enrolment mixes against frontal and profile probes).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from facecodec import openset
from facecodec.codec.profiles import codec_by_name
from facecodec.eval.open_set_draws import Pool, draw, enrolment_guidance, evaluate
from facecodec.eval.splits import HELDOUT_SPLITS
from facecodec.train.data import SAME_PERSON_COSINE, load_split_faces

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "results" / "open_set.json"
SHIPPED = ROOT / "cloud_analyzer" / "open_set_heldout.json"
TARGET_FPIR = 0.01
GALLERIES = (100, 1000, 10_000)
ENROL = (1, 3)
FRAMES = (1, 3)

__all__ = ["draw", "evaluate", "main"]


SPLIT_NAMES = {"lfw": "LFW eval", "cfp_heldout": "CFP 251-500", "fgnet_adults": "FG-NET adults",
               "fgnet_children": "FG-NET children", "celeba_heldout": "CelebA odd ids"}


def markdown_table(report: dict) -> str:
    """README's table of the default operating point per split, from a written report."""
    rows = ["| split | gallery | enrol photos | probe frames | target | stated FPIR (95% upper) | measured FPIR "
            "(named / strangers) | FNIR | FNIR at FPIR 1%: plain / quality-weighted |",
            "|---|---|---|---|---|---|---|---|---|"]
    for p in report["points"]:
        if p.get("distractors_unfiltered"):  # UTKFace photos of the split's own people among the distractors
            continue
        rows.append(
            f"| {SPLIT_NAMES.get(p['dataset'], p['dataset'])} | {p['gallery']:,} | {p['enrol_images']} | "
            f"{p['probe_frames']} | {report['target_fpir']:.0%} | "
            f"{p['stated_fpir']:.2%} ({p['stated_fpir_upper']:.2%}) | "
            f"**{p['default_fpir']:.2%}** ({p['default_fpir_named']} / {p['non_mated_probes']}) | "
            f"{p['default_fnir']:.1%} | {p['fnir_at_fpir_1e-2']:.1%} / {p['weighted_fnir_at_fpir_1e-2']:.1%} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--cfp-images", type=Path, default=None,
                        help="the whole CFP's Data/Images folder (for its names); default FACECODEC_CFP")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--splits", nargs="+", default=list(HELDOUT_SPLITS), choices=HELDOUT_SPLITS)
    parser.add_argument("--galleries", type=int, nargs="+", default=list(GALLERIES))
    parser.add_argument("--rate", type=int, default=None, help="base-layer rate id (default: the profile's)")
    parser.add_argument("--calibration", type=Path, default=None,
                        help="a weights sidecar JSON whose open_set calibration to use instead of the committed one "
                             "(e.g. an older commit's, for a before/after on the same faces); nothing is shipped")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--merge", action="store_true",
                        help="keep the points of --out (and of the shipped file) that this run does not measure")
    parser.add_argument("--no-ship", action="store_true", help="do not write the analyzer's held-out figures")
    parser.add_argument("--combine", type=Path, default=None,
                        help="measure nothing: merge this report's points into --out (as --merge) and ship")
    parser.add_argument("--table", action="store_true", help="print README's table from --out and stop")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(args.out.read_text())))
        return
    if args.combine:
        write(merged(json.loads(args.out.read_text()), json.loads(args.combine.read_text())), args.out, ship=True)
        return
    start = time.time()
    codec = codec_by_name("scalable", args.rate)
    calibration = codec.open_set_calibration
    if args.calibration is not None:
        calibration = openset.OpenSetCalibration.from_json(json.loads(args.calibration.read_text())["open_set"])
    faces = load_split_faces(args.faces, cfp_images=args.cfp_images)
    coded = openset.unit(np.stack([codec.base.decode(codec.base.encode(x)) for x in faces.descriptors]))
    distractors = None
    if (args.faces / "utk.npz").exists():
        with np.load(args.faces / "utk.npz") as z:
            distractors = openset.unit(z["descriptors"][z["detected"]].astype(np.float32))
    dropped = 0
    if distractors is not None:
        # UTKFace is scraped from the web: 22% of CFP 251-500's photos have a UTKFace photo at the
        # same-person cosine. A distractor that is a held-out person would be "a stranger named" when
        # it is that person; drop every UTKFace photo that close to any held-out photo.
        held = openset.unit(faces.descriptors[np.isin(faces.splits, HELDOUT_SPLITS)])
        same = np.zeros(len(distractors), bool)
        for start in range(0, len(held), 4096):
            same |= (held[start : start + 4096] @ distractors.T >= SAME_PERSON_COSINE).any(0)
        distractors, dropped = distractors[~same], int(same.sum())
    pool = Pool(faces, openset.unit(faces.descriptors), coded, distractors)
    points = []
    for split in args.splits:
        for gallery in args.galleries:
            for enrol in ENROL:
                for frames in FRAMES:
                    p = evaluate(pool, split, calibration, TARGET_FPIR, gallery, enrol, frames, args.repeats)
                    if p is None:
                        continue
                    points.append(p)
                    print(f"{split:15s} G={p['gallery']:5d} E={enrol} F={frames} "
                          f"FNIR@1e-2 {p['fnir_at_fpir_1e-2']:.3f} (weighted {p['weighted_fnir_at_fpir_1e-2']:.3f}) "
                          f"default: FPIR {p['default_fpir']:.4f} (stated {p['stated_fpir']:.4f}, "
                          f"upper {p['stated_fpir_upper']:.4f}) FNIR {p['default_fnir']:.3f} "
                          f"({p['mated_probes']} mated, {p['non_mated_probes']} non-mated)", flush=True)
    guidance = enrolment_guidance(pool, calibration, TARGET_FPIR, args.repeats) if "cfp_heldout" in args.splits else []
    for g in guidance:
        print(f"enrolment {g['enrolment']:24s} probes {g['probes']:8s} FNIR@1e-2 {g['fnir_at_fpir_1e-2']:.3f} "
              f"default FNIR {g['default_fnir']:.3f}", flush=True)
    from bench.report import machine_record

    report = {
        "protocol": __doc__.split("Protocol")[1].strip(),
        "command": " ".join(["python -m facecodec.eval.open_set", *(argv if argv is not None else sys.argv[1:])]),
        "target_fpir": TARGET_FPIR,
        "codec": f"{codec.spec.name} rate {codec.rate_id}",
        "calibrated_on": calibration.sources,
        "quality_rejected_share": {s: round(float(1 - faces.passes[faces.splits == s].mean()), 4)
                                   for s in args.splits if (faces.splits == s).any()},
        "identities": {s: int(len(np.unique(faces.identities[faces.splits == s]))) for s in args.splits},
        "photos": {s: int((faces.splits == s).sum()) for s in args.splits},
        "utk_distractors": 0 if distractors is None else int(len(distractors)),
        "utk_dropped_as_held_out_people": dropped,
        "repeats": args.repeats,
        "machine": machine_record(),
        "seconds": round(time.time() - start, 1),
        "points": points,
        "enrolment": guidance,
    }
    if args.merge and args.out.exists():
        report = merged(json.loads(args.out.read_text()), report)
    write(report, args.out, ship=args.calibration is None and not args.no_ship)


def _key(p: dict) -> tuple:
    return p["dataset"], p["gallery"] // 100 if p["gallery"] < 5000 else -1, p["enrol_images"], p["probe_frames"]


def merged(earlier: dict, later: dict) -> dict:
    """`later` with the points of `earlier` it did not measure (same split, gallery, enrolment, frames)."""
    measured = {_key(p) for p in later["points"]}
    points = [p for p in earlier["points"] if _key(p) not in measured] + later["points"]
    order = list(HELDOUT_SPLITS)
    points.sort(key=lambda p: (order.index(p["dataset"]), p["gallery"], p["enrol_images"], p["probe_frames"]))
    return {**earlier, **later, "points": points, "enrolment": later.get("enrolment") or earlier.get("enrolment", []),
            "merged_runs": [*earlier.get("merged_runs", [earlier.get("command")]), later.get("command")]}


def write(report: dict, out: Path, ship: bool) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if not ship:
        print(f"wrote {out}")
        return
    shipped = json.loads(SHIPPED.read_text()) if SHIPPED.exists() else {}
    codec = report["codec"].replace(" rate ", "/")
    shipped[codec] = [{k: p[k] for k in ("dataset", "gallery", "enrol_images", "probe_frames", "default_fpir",
                                         "default_fnir", "stated_fpir", "non_mated_probes")}
                      for p in report["points"] if not p.get("distractors_unfiltered")]
    SHIPPED.write_text(json.dumps(shipped, indent=2) + "\n")
    print(f"wrote {out} and {SHIPPED}")


if __name__ == "__main__":
    main()
