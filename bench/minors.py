"""Children: how well the child-look probe (`facecodec.age`) flags them, and what the flag does to the
rate at which FG-NET children are named as someone else.

    python -m facecodec.train.age_faces      # once: descriptors of the age-labelled sets (EXTRA.md)
    python bench/minors.py [--faces /work/cache/minors] [--repeats 40]

1. Flagging, on faces the probe never saw: UTKFace's held-out part, FairFace val, FG-NET (never trained
   on; all 82 people, and the held-out people of `facecodec.eval.splits` alone), LFW evaluation people
   (adults, nearly all). For "age < 13" and "age < 18": precision and recall of the flag the analyzer
   uses (P(age < 13) >= flag_at), and the ROC AUC of that head's probability; the share of adults flagged.
   FairFace bins across a cutoff (10-19) are left out of it. Each face as an enrolment photo gives it
   (`float32`) and as a camera's face gives it (`base_layer`: decoded, default codec).
2. Open-set decisions on FG-NET, the analyzer's way: templates of 3 float descriptors, single-frame
   base-layer probes, the threshold the committed calibration gives for a 1% target FPIR at this
   gallery's make-up. Galleries of 100 and 1,000 identities: half of a side's FG-NET people (3 random photos
   each, any age) plus LFW evaluation people as fillers; every photo of the other half is a non-mated
   probe, the enrolled people's other photos mated ones; `--repeats` random draws pooled. FPIR and FNIR
   per probe age band, under each child policy: off, withhold, strict (threshold `child_threshold`).
   `child_threshold` is chosen on the calibration-side people (FG-NET even numbers, `splits`): the
   lowest cosine at which flagged non-mated probes there are named at most at the target rate, at 100
   identities (the default ANALYZER_CHILD_THRESHOLD; the one chosen at 1,000 is reported beside it); the
   figures are measured on the held-out people (odd numbers).
Writes `bench/results/minors.json`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import machine_record, write_report  # noqa: E402
from facecodec import openset  # noqa: E402
from facecodec.age import ChildProbe  # noqa: E402
from facecodec.eval.splits import fgnet_is_calibration_person  # noqa: E402
from facecodec.train.age_probe import as_probes, labels  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "minors.json"
TARGET_FPIR = 0.01
GALLERIES = (100, 1000)  # the strict threshold is chosen at the first
ENROL = 3
BANDS = ((0, 4), (5, 9), (10, 12), (13, 17), (18, 29), (30, 99))


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        out = {k: z[k] for k in z.files}
    out["float32"] = openset.unit(out["descriptors"].astype(np.float32))
    out["base_layer"] = as_probes(out["float32"])
    return out


def subset(faces: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {k: (v[mask] if isinstance(v, np.ndarray) and v.ndim and len(v) == len(mask) else v)
            for k, v in faces.items()}


def flag_figures(probe: ChildProbe, faces: dict[str, np.ndarray]) -> dict:
    out: dict = {"faces": int(len(faces["age_lo"]))}
    for kind in ("float32", "base_layer"):
        p = probe.probabilities(faces[kind])
        flag = p[:, 0] >= probe.flag_at
        row: dict = {"flagged": round(float(flag.mean()), 4)}
        known = faces["age_lo"] >= 0
        if known.any():
            for head, cutoff in enumerate(probe.cutoffs):
                y = labels(faces["age_lo"], faces["age_hi"], cutoff)
                keep = y >= 0
                yk, fk = y[keep] == 1, flag[keep]
                row[f"under_{cutoff}"] = {
                    "younger": int(yk.sum()), "not": int((~yk).sum()),
                    "precision": round(float(yk[fk].mean()), 4) if fk.any() else None,
                    "recall": round(float(fk[yk].mean()), 4) if yk.any() else None,
                    "auc": round(float(roc_auc_score(yk, p[keep, head])), 4) if 0 < yk.sum() < len(yk) else None,
                }
            adults = faces["age_lo"] >= 18
            row["adults_flagged"] = round(float(flag[adults].mean()), 4) if adults.any() else None
            row["adults"] = int(adults.sum())
        out[kind] = row
    return out


def band_figures(probe: ChildProbe, faces: dict[str, np.ndarray]) -> dict:
    flag = probe.probabilities(faces["base_layer"])[:, 0] >= probe.flag_at
    age = faces["age_lo"]
    return {f"{lo}-{hi}": {"faces": int(((age >= lo) & (age <= hi)).sum()),
                           "flagged": round(float(flag[(age >= lo) & (age <= hi)].mean()), 4)}
            for lo, hi in BANDS}


def draws(fg: dict, lfw: dict, gallery: int, repeats: int, rng: np.random.Generator):
    """Per draw: gallery templates (G x D), their FG-NET person (or ""), the threshold, and the probe
    indices into `fg` (non-mated, mated with their template row)."""
    people = np.unique(fg["person"])
    ok = fg["quality_ok"]
    lfw_people = np.unique(lfw["person"])
    calibration = _calibration()
    for _ in range(repeats):
        order = rng.permutation(people)
        enrolled = [p for p in order[: len(order) // 2] if ((fg["person"] == p) & ok).sum() > ENROL]
        templates, owners, used, counts = [], [], set(), {}
        for p in enrolled:
            idx = rng.permutation(np.flatnonzero((fg["person"] == p) & ok))[:ENROL]
            templates.append(openset.identity_template(fg["float32"][idx]))
            owners.append(p)
            used.update(idx.tolist())
        for p in rng.permutation(lfw_people)[: gallery - len(templates)]:
            idx = rng.permutation(np.flatnonzero((lfw["person"] == p) & lfw["quality_ok"]))[:ENROL]
            if len(idx):  # LFW people with fewer photos enrol with what they have
                templates.append(openset.identity_template(lfw["float32"][idx]))
                owners.append("")
                counts[openset.enrol_key(len(idx))] = counts.get(openset.enrol_key(len(idx)), 0) + 1
        counts[openset.enrol_key(ENROL)] = counts.get(openset.enrol_key(ENROL), 0) + len(enrolled)
        threshold = calibration.threshold(TARGET_FPIR, counts, 1)
        non_mated = np.flatnonzero(~np.isin(fg["person"], enrolled))
        mated = np.array([i for i in np.flatnonzero(np.isin(fg["person"], enrolled)) if i not in used], int)
        yield np.stack(templates), np.array(owners), threshold, non_mated, mated


def _calibration() -> openset.OpenSetCalibration:
    from facecodec.codec.profiles import codec_by_name

    return codec_by_name("scalable").open_set_calibration


def scores(fg: dict, lfw: dict, gallery: int, repeats: int, seed: int) -> dict[str, np.ndarray]:
    """Pooled probes over the draws: best score, whether the best is the right person, threshold, index."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {k: [] for k in ("mated", "best", "right", "threshold", "index")}
    for templates, owners, threshold, non_mated, mated in draws(fg, lfw, gallery, repeats, rng):
        for kind, idx in (("non", non_mated), ("mated", mated)):
            s = fg["base_layer"][idx] @ templates.T
            best = s.argmax(axis=1)
            rows["mated"].append(np.full(len(idx), kind == "mated"))
            rows["best"].append(s.max(axis=1))
            rows["right"].append(owners[best] == fg["person"][idx])
            rows["threshold"].append(np.full(len(idx), threshold))
            rows["index"].append(idx)
    return {k: np.concatenate(v) for k, v in rows.items()}


def named(pooled: dict, fg: dict, flags: np.ndarray, policy: str, child_threshold: float) -> np.ndarray:
    """Whether each pooled probe names someone (its best candidate) under `policy`."""
    i = pooled["index"]
    passes = pooled["best"] >= pooled["threshold"]
    ok = fg["quality_ok"][i]  # the quality gate names nobody
    flagged = flags[i]
    if policy == "withhold":
        passes &= ~flagged
    elif policy == "strict":
        passes &= ~flagged | (pooled["best"] >= np.maximum(pooled["threshold"], child_threshold))
    return passes & ok


def policy_figures(pooled: dict, fg: dict, flags: np.ndarray, child_threshold: float) -> dict:
    age = fg["age_lo"][pooled["index"]]
    out: dict = {}
    for policy in ("off", "withhold", "strict"):
        name = named(pooled, fg, flags, policy, child_threshold)
        row = {}
        for label, lo, hi in (("under_13", 0, 12), ("13_to_17", 13, 17), ("adults", 18, 200)):
            band = (age >= lo) & (age <= hi)
            non, mated = band & ~pooled["mated"], band & pooled["mated"]
            row[label] = {
                "fpir": round(float(name[non].mean()), 4), "non_mated_probes": int(non.sum()),
                "fnir": round(float(1 - (name & pooled["right"])[mated].mean()), 4), "mated_probes": int(mated.sum()),
            }
        out[policy] = row
    band = age >= 18
    out["adult_probes_flagged"] = round(float(flags[pooled["index"]][band].mean()), 4)
    out["mean_threshold"] = round(float(pooled["threshold"].mean()), 4)
    return out


def choose_child_threshold(pooled: dict, fg: dict, flags: np.ndarray) -> float:
    """Lowest cosine at which flagged non-mated probes are named at most at TARGET_FPIR."""
    i = pooled["index"]
    s = pooled["best"][~pooled["mated"] & flags[i] & fg["quality_ok"][i]]
    k = int(np.floor(TARGET_FPIR * len(s)))
    return float(np.sort(s)[::-1][k]) + 1e-4 if len(s) else 1.0


def flag_sweep(probe: ChildProbe, sets: dict, heldout: tuple, child_threshold: float) -> list[dict]:
    """What moving the flag threshold (ANALYZER_CHILD_FLAG_AT) does: children caught, adults flagged,
    and FG-NET held-out people's figures under `withhold`."""
    part, _, pooled = heldout
    rows = []
    for flag_at in sorted({0.3, 0.5, round(probe.flag_at, 4), 0.8, 0.9}):
        row: dict = {"flag_at": flag_at}
        for name, faces in (("utk_heldout", subset(sets["utk"], sets["utk"]["heldout"])),
                            ("fairface_val", subset(sets["fairface"], sets["fairface"]["heldout"]))):
            flag = probe.probabilities(faces["base_layer"])[:, 0] >= flag_at
            young, adult = faces["age_hi"] < 13, faces["age_lo"] >= 18
            row[name] = {"recall_under_13": round(float(flag[young].mean()), 4),
                         "adults_flagged": round(float(flag[adult].mean()), 4)}
        row["lfw_flagged"] = round(float((probe.probabilities(sets["lfw"]["base_layer"])[:, 0] >= flag_at).mean()), 4)
        flags = probe.probabilities(part["base_layer"])[:, 0] >= flag_at
        withhold = policy_figures(pooled, part, flags, child_threshold)["withhold"]
        row["fgnet_heldout_withhold"] = {"under_13_fpir": withhold["under_13"]["fpir"],
                                         "under_13_fnir": withhold["under_13"]["fnir"],
                                         "13_to_17_fpir": withhold["13_to_17"]["fpir"],
                                         "adults_fnir": withhold["adults"]["fnir"]}
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("/work/cache/minors"))
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    probe = ChildProbe()
    sets = {name: load(args.faces / f"{name}.npz") for name in ("utk", "fairface", "fgnet", "lfw")}
    fg = sets["fgnet"]
    calib_side = np.array([fgnet_is_calibration_person(int(p.split("/")[1])) for p in fg["person"]])
    report: dict = {
        "probe": {"flag_at": probe.flag_at, **{k: probe.info.get(k) for k in ("command", "training_faces", "heads")}},
        "flagging": {
            "utk_heldout": flag_figures(probe, subset(sets["utk"], sets["utk"]["heldout"])),
            "fairface_val": flag_figures(probe, subset(sets["fairface"], sets["fairface"]["heldout"])),
            "fgnet_all": flag_figures(probe, fg),
            "fgnet_heldout_people": flag_figures(probe, subset(fg, ~calib_side)),
            "lfw_eval": flag_figures(probe, sets["lfw"]),
        },
        "fgnet_flagged_by_age": band_figures(probe, subset(fg, ~calib_side)),
        "faces_detected": {k: f"{len(v['age_lo'])} of {int(v['images'])}" for k, v in sets.items()},
    }
    flags = probe.probabilities(fg["base_layer"])[:, 0] >= probe.flag_at
    report["open_set_fgnet"] = {
        "protocol": f"galleries of {GALLERIES} (half of the side's FG-NET people x {ENROL} photos + LFW eval "
                    f"fillers), single-frame base-layer probes, target FPIR {TARGET_FPIR}, {args.repeats} draws; "
                    "`strict` at the threshold chosen on the calibration side at the first gallery size (the "
                    "default ANALYZER_CHILD_THRESHOLD)"}
    child_threshold = None
    for gallery in GALLERIES:
        sides = {}
        for side, mask in (("calibration", calib_side), ("heldout", ~calib_side)):
            part = subset(fg, mask)
            sides[side] = (part, flags[mask], scores(part, sets["lfw"], gallery, args.repeats, args.seed))
        chosen = choose_child_threshold(sides["calibration"][2], sides["calibration"][0], sides["calibration"][1])
        if child_threshold is None:
            child_threshold, sweep_on = chosen, sides["heldout"]
        part, f, pooled = sides["heldout"]
        report["open_set_fgnet"][f"gallery_{gallery}"] = {
            "child_threshold_used": round(child_threshold, 4),
            "child_threshold_chosen_at_this_gallery": round(chosen, 4),
            **{side: policy_figures(pooled, part, f, child_threshold) for side, (part, f, pooled) in sides.items()},
            "heldout_strict_at_this_gallery_threshold": policy_figures(pooled, part, f, chosen)["strict"],
        }
    report["flag_at_sweep"] = flag_sweep(probe, sets, sweep_on, child_threshold)
    report["machine"] = machine_record()
    write_report(report, args.out)


if __name__ == "__main__":
    sys.exit(main())
