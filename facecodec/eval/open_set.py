"""Open-set identification benchmark: FNIR at fixed FPIR, the default operating point, rank-1.

    python -m facecodec.eval.open_set [--faces data/faces] [--cfp data/faces-cfp-all/cfp.npz]
                                      [--fgnet data/faces-fgnet/fgnet.npz]

Needs `python -m facecodec.train.prepare` (and, for the second split, CFP run through it: the shared
50-identity test split by default, the whole CFP with FACECODEC_CFP as `../shared/datasets/EXTRA.md` says).
Writes `bench/results/open_set.json`.

Protocol (as NIST's 1:N evaluations): a gallery of G identities, each enrolled from E photos (their
normalised mean is the identity's one template, made from the float descriptor as the analyzer does;
probes are of the descriptor kind measured); *mated* probes are other photos of enrolled people,
*non-mated* probes are photos of people never enrolled. A probe of F frames fuses F photos of one
person (`facecodec.openset.identity_template`). FPIR = share of non-mated probes named as anyone;
FNIR = share of mated probes not named as the right person (wrong name, or nobody). Faces the quality
gate rejects (`facecodec.frontend.quality`) are never enrolled and never matched: a rejected mated
probe counts as a miss, a rejected non-mated probe as correctly not named; the share rejected is
reported. Images in which no face was detected are left out (a camera sends none).

Splits, none of which any model here was trained, tuned or calibrated on:
- `lfw`: LFW evaluation identities (View-2 folds 6-10), 2,195 people.
- `cfp`: CFP (frontal + profile photos of celebrities), identities 251-500 (001-250 may calibrate the
  threshold, see `facecodec.train.calibrate`). Its people cannot fill a 1,000-identity gallery: the rest
  is enrolled from LFW evaluation identities (distractors, never probed), leaving out the LFW people
  whose names are in CFP (153 of CFP's 500 are also in LFW).
- `fgnet` (with --fgnet): FG-NET, 82 people photographed from childhood to old age: enrolment and
  probes at different ages. Galleries are filled with LFW evaluation identities.

Galleries: the identities with enough photos for enrolment + one probe are enrolled first (their
probes are the mated ones); distractor identities fill the gallery up to G; every remaining identity
of the split gives non-mated probes. Each configuration is repeated over `--repeats` random draws and
the probes pooled. "default" = the operating point the analyzer uses: the threshold that
`facecodec.openset` derives for a 1% target FPIR from the gallery's make-up and the probe's frames,
with the calibration of training identities only (for the base layer, the committed one). "before" =
the decision this analyzer made until now, for comparison: the best single enrolment photo against
the per-pair FAR 1e-3 threshold (base layer, single-frame probes).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facecodec import openset
from facecodec.codec.profiles import codec_by_name
from facecodec.datasets import CFP_CALIBRATION_MAX_ID, cfp_names, lfw_eval_identities
from facecodec.frontend.quality import passes
from facecodec.train.data import load_calibration_faces

OUT = Path(__file__).resolve().parents[2] / "bench" / "results" / "open_set.json"
TARGET_FPIR = 0.01
GALLERIES = (100, 1000)
ENROL = (1, 3)
FRAMES = (1, 3)


@dataclass
class Split:
    name: str
    descriptors: dict[str, np.ndarray]  # descriptor kind -> N x D unit vectors
    identities: np.ndarray
    quality_ok: np.ndarray


def load_split(name: str, path: Path, codec, keep=None) -> Split:
    """The split's detected faces; with a codec, their decoded base layers too."""
    with np.load(path) as z:
        mask = z["detected"] if keep is None else z["detected"] & keep(z["identities"])
        float32 = openset.unit(z["descriptors"][mask].astype(np.float32))
        ok = passes(z["crops"][mask], z["points68"][mask])
        identities = z["identities"][mask]
    kinds = {"float32": float32}
    if codec is not None:
        kinds["base_layer"] = openset.unit(np.stack([codec.base.decode(codec.base.encode(x)) for x in float32]))
    return Split(name, kinds, identities, ok)


def draw(split: Split, fillers: Split | None, gallery: int, enrol: int, frames: int, rng: np.random.Generator):
    """One random gallery: template index sets, mated probes as (template number, [index groups]) and
    non-mated probe index groups. Indices into a filler split are offset by len(split.identities)."""
    ids = rng.permutation(np.unique(split.identities))
    usable = {i: rng.permutation(np.flatnonzero((split.identities == i) & split.quality_ok)) for i in ids}
    eligible = [i for i in ids if len(usable[i]) >= enrol + frames]
    enrolled = eligible[: min(gallery, len(ids) // 2)]  # at least half of the people stay strangers
    templates = [usable[i][:enrol] for i in enrolled]
    mated = [(n, [usable[i][s : s + frames] for s in range(enrol, len(usable[i]) - frames + 1, frames)])
             for n, i in enumerate(enrolled)]
    taken = set(enrolled)
    need = gallery - len(enrolled)
    if fillers is None:  # distractors: more of the split's own people, enrolled but never probed
        for i in ids:
            if need and i not in taken and len(usable[i]):
                templates.append(usable[i][:enrol])
                taken.add(i)
                need -= 1
    elif need > 0:
        offset = len(split.identities)
        for i in rng.permutation(np.unique(fillers.identities))[:need]:
            idx = np.flatnonzero((fillers.identities == i) & fillers.quality_ok)
            if len(idx):
                templates.append(offset + rng.permutation(idx)[:enrol])
    non_mated = []
    for i in ids:
        if i not in taken:  # every photo, low-quality ones too: the gate must stop those
            g = rng.permutation(np.flatnonzero(split.identities == i))
            non_mated += [g[s : s + frames] for s in range(0, len(g) - frames + 1, frames)]
    return templates, mated, non_mated


def evaluate(split: Split, fillers: Split | None, kind: str, calibration: openset.OpenSetCalibration,
             gallery: int, enrol: int, frames: int, repeats: int, seed: int = 0,
             pair_threshold: float | None = None) -> dict:
    """One configuration. With `pair_threshold`, also the decision this analyzer made before: the best
    single enrolment photo (enrolled through the base layer, as it was) against a per-pair FAR 1e-3
    threshold (single-frame probes)."""
    rng = np.random.default_rng(seed)
    vectors = split.descriptors[kind]
    # As deployed: base-layer probes meet templates enrolled from the float descriptor.
    enrolled_as = "float32" if kind == "base_layer" else kind
    template_vectors = split.descriptors[enrolled_as]
    ok = split.quality_ok
    if fillers is not None:
        vectors = np.concatenate([vectors, fillers.descriptors[kind]])
        template_vectors = np.concatenate([template_vectors, fillers.descriptors[enrolled_as]])
    mated_scores, mated_right, nonmated_scores, sizes = [], [], [], []
    mated_th, nonmated_th = [], []  # each probe's own repeat's operating threshold
    legacy_named, legacy_right = [], []
    rejected_nonmated = 0  # mated probes are drawn from photos that pass the gate
    for _ in range(repeats):
        templates, mated, non_mated = draw(split, fillers, gallery, enrol, frames, rng)
        t = np.stack([openset.identity_template(template_vectors[idx]) for idx in templates])
        counts = {}
        for idx in templates:
            counts[openset.enrol_key(len(idx))] = counts.get(openset.enrol_key(len(idx)), 0) + 1
        threshold = calibration.threshold(TARGET_FPIR, counts, frames)
        sizes.append(len(t))
        photos = np.concatenate(templates)
        owner = np.repeat(np.arange(len(templates)), [len(idx) for idx in templates])
        for owner_of, probe_groups in mated:
            for g in probe_groups:
                scores = t @ openset.identity_template(vectors[g])
                mated_scores.append(scores.max())
                mated_right.append(int(np.argmax(scores)) == owner_of)
                mated_th.append(threshold)
                if pair_threshold is not None and frames == 1:
                    single = vectors[photos] @ vectors[g[0]]
                    legacy_right.append(owner[np.argmax(single)] == owner_of and single.max() >= pair_threshold)
        for g in non_mated:
            good = g[ok[g]]
            if len(good) < len(g):  # the gate drops rejected frames; nothing left: not matched at all
                rejected_nonmated += 1
            nonmated_th.append(threshold)
            if not len(good):
                nonmated_scores.append(-np.inf)
                continue
            nonmated_scores.append((t @ openset.identity_template(vectors[good])).max())
            if pair_threshold is not None and frames == 1:
                legacy_named.append((vectors[photos] @ vectors[good[0]]).max() >= pair_threshold)
    mated_scores, mated_right = np.array(mated_scores), np.array(mated_right)
    nonmated_scores = np.array(nonmated_scores)

    def fnir_at(fpir: float) -> float:
        k = int(np.floor(fpir * len(nonmated_scores)))
        top = np.sort(nonmated_scores)[::-1]
        t = top[k] if k < len(top) else -np.inf  # accept strictly above: at most k strangers named
        return float(1 - np.mean(mated_right & (mated_scores > t)))

    mated_th, nonmated_th = np.array(mated_th), np.array(nonmated_th)
    return {
        "gallery": int(np.round(np.mean(sizes))), "enrol_images": enrol, "probe_frames": frames,
        "descriptor": kind, "split": split.name,
        "fnir_at_fpir_1e-2": fnir_at(1e-2), "fnir_at_fpir_1e-3": fnir_at(1e-3),
        "default_threshold": float(np.mean(nonmated_th)),
        "default_fpir": float(np.mean(nonmated_scores >= nonmated_th)),
        "default_fnir": float(1 - np.mean(mated_right & (mated_scores >= mated_th))),
        "rank1": float(np.mean(mated_right)),
        "mated_probes": int(len(mated_scores)), "non_mated_probes": int(len(nonmated_scores)),
        "non_mated_with_rejected_frames": int(rejected_nonmated),
        **({"before_fpir": float(np.mean(legacy_named)), "before_fnir": float(1 - np.mean(legacy_right)),
            "before_threshold": pair_threshold} if legacy_named else {}),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("data/faces"))
    parser.add_argument("--cfp", type=Path, default=None,
                        help="a whole CFP run through prepare (default: FACES/cfp.npz, the shared test split)")
    parser.add_argument("--cfp-images", type=Path, default=None,
                        help="that CFP's Data/Images folder (for its list of names); default FACECODEC_CFP")
    parser.add_argument("--fgnet", type=Path, default=None, help="FG-NET run through prepare (a third split)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rate", type=int, default=None, help="base-layer rate id (default: the profile's)")
    parser.add_argument("--float32-only", action="store_true",
                        help="only the float32 descriptor (for prepared folders of another recogniser)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    start = time.time()
    codec = None if args.float32_only else codec_by_name("scalable", args.rate)
    evaluation = {f"lfw/{n}" for n in lfw_eval_identities()}
    lfw = load_split("lfw", args.faces / "lfw.npz", codec, keep=lambda ids: np.isin(ids, list(evaluation)))
    cfp = load_split("cfp", args.cfp or args.faces / "cfp.npz", codec,
                     keep=lambda ids: np.array([int(i.split("/")[1]) > CFP_CALIBRATION_MAX_ID for i in ids]))
    # People in both data sets would be "strangers" who are enrolled: keep them out of the fillers.
    in_cfp = {n.replace(" ", "_") for n in cfp_names(args.cfp_images).values()}
    lfw_fillers = Split("lfw", lfw.descriptors, lfw.identities, lfw.quality_ok & ~np.isin(
        lfw.identities, [f"lfw/{n}" for n in in_cfp]))
    calibration_faces = load_calibration_faces(args.faces, args.cfp, args.cfp_images)
    calibrations = {"float32": openset.calibrate(*calibration_faces)}  # same faces as the base layer's
    if codec is not None:
        calibrations["base_layer"] = codec.open_set_calibration
    points = []
    splits = [(lfw, None), (cfp, lfw_fillers)]
    if args.fgnet:
        splits.append((load_split("fgnet", args.fgnet, codec), lfw))
    for split, fillers in splits:
        for gallery in GALLERIES:
            for enrol in ENROL:
                for frames in FRAMES:
                    for kind in calibrations:
                        pair = codec.match_threshold if kind == "base_layer" else None
                        p = evaluate(split, fillers, kind, calibrations[kind], gallery, enrol, frames, args.repeats,
                                     pair_threshold=pair)
                        points.append(p)
                        print(f"{split.name:4s} G={p['gallery']:5d} E={enrol} F={frames} {kind:10s} "
                              f"FNIR@1e-2 {p['fnir_at_fpir_1e-2']:.3f} @1e-3 {p['fnir_at_fpir_1e-3']:.3f} "
                              f"default: t={p['default_threshold']:.3f} FPIR {p['default_fpir']:.4f} "
                              f"FNIR {p['default_fnir']:.3f}  rank1 {p['rank1']:.3f} "
                              f"({p['mated_probes']} mated, {p['non_mated_probes']} non-mated)", flush=True)
    report = {
        "protocol": __doc__.split("Protocol")[1].strip(),
        "target_fpir": TARGET_FPIR,
        "codec": f"{codec.spec.name} rate {codec.rate_id}" if codec else None,
        "faces": str(args.faces),
        "quality_rejected_share": {s.name: float(1 - s.quality_ok.mean()) for s, _ in splits},
        "identities": {s.name: int(len(np.unique(s.identities))) for s, _ in splits},
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, 2 cores, no GPU",
        "seconds": round(time.time() - start, 1),
        "points": points,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
