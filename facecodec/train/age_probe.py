"""Train the child-look probe (`facecodec.age`): logistic heads P(age < 13), P(age < 18) on the descriptor.

    python -m facecodec.train.age_faces            # once: descriptors of the age-labelled sets
    python -m facecodec.train.age_probe [--faces /work/cache/minors]

Training faces: the non-held-out part of UTKFace (exact ages) and FairFace's train split (age bins; a
bin that straddles a cutoff, 10-19, is left out of that head). Each face counts twice: as its float
descriptor (what an enrolment photo gives) and as the analyzer's probe, the decoded base layer of the
default codec (what a camera's face gives), so one probe serves both. The regularisation C is chosen by
5-fold cross-validation on training faces only; the flag threshold on P(age < 13) is the one at which
`--adult-flag-rate` of training adults (age >= 18) are flagged, by cross-validated predictions.
Held-out faces (UTKFace's held-out part, FairFace val, FG-NET, LFW) are never seen: `bench/minors.py`
measures on them. Writes `facecodec/weights/child_probe.{npz,json}`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from facecodec.age import WEIGHTS
from facecodec.codec.profiles import codec_by_name
from facecodec.frontend.describe import DESCRIPTOR_MODEL
from facecodec.openset import unit

CUTOFFS = (13, 18)
C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def as_probes(descriptors: np.ndarray, profile: str = "scalable") -> np.ndarray:
    """The analyzer's probe of each face: its base layer in the default codec, decoded (unit)."""
    codec = codec_by_name(profile)
    return unit(np.stack([codec.base.decode(codec.base.encode(d)) for d in unit(descriptors)]).astype(np.float32))


def labels(age_lo: np.ndarray, age_hi: np.ndarray, cutoff: int) -> np.ndarray:
    """1: younger than `cutoff`, 0: not, -1: unknown (no age, or a bin across the cutoff)."""
    return np.where(age_hi < cutoff, 1, np.where(age_lo >= cutoff, 0, -1))


def training_set(faces: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    xs, los, his = [], [], []
    counts = {}
    for name in ("utk", "fairface"):
        z = load(faces / f"{name}.npz")
        train = ~z["heldout"]
        counts[name] = int(train.sum())
        xs.append(unit(z["descriptors"][train].astype(np.float32)))
        los.append(z["age_lo"][train])
        his.append(z["age_hi"][train])
    x, lo, hi = np.concatenate(xs), np.concatenate(los), np.concatenate(his)
    return x, lo, hi, counts


def fit_head(x: np.ndarray, probes: np.ndarray, y: np.ndarray, seed: int
             ) -> tuple[LogisticRegression, float, np.ndarray]:
    """(model, C, cross-validated P(y=1) of the float descriptors) for the faces with a label. Folds are
    by face, the float and probe copies of a face always in the same fold."""
    keep = y >= 0
    n = int(keep.sum())
    folds = np.random.default_rng(seed).integers(0, 5, n)
    both_x = np.concatenate([x[keep], probes[keep]])
    both_y = np.concatenate([y[keep], y[keep]])
    both_groups = np.concatenate([folds, folds])
    best = None
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        cv = cross_val_predict(model, both_x, both_y, groups=both_groups, cv=_GroupFolds(both_groups),
                               method="predict_proba")[:, 1]
        loss = -np.mean(both_y * np.log(cv + 1e-9) + (1 - both_y) * np.log(1 - cv + 1e-9))
        print(f"  C={c}: cross-validated log loss {loss:.4f}", flush=True)
        if best is None or loss < best[0]:
            best = (loss, c, cv[:n])
    _, c, cv_float = best
    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(both_x, both_y)
    full = np.full(len(y), np.nan)
    full[keep] = cv_float
    return model, c, full


class _GroupFolds:
    """5 folds given by a group label per row (sklearn's GroupKFold would re-balance them)."""

    def __init__(self, groups: np.ndarray) -> None:
        self.groups = groups

    def split(self, x, y=None, groups=None):  # noqa: ANN001, ARG002  (sklearn's splitter protocol)
        for k in range(5):
            yield np.flatnonzero(self.groups != k), np.flatnonzero(self.groups == k)

    def get_n_splits(self, *args) -> int:  # noqa: ANN002, ARG002
        return 5


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("/work/cache/minors"))
    parser.add_argument("--adult-flag-rate", type=float, default=0.02,
                        help="share of training adults (18+) the flag threshold lets through as children")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args(argv)
    x, lo, hi, counts = training_set(args.faces)
    probes = as_probes(x)
    coefs, intercepts, heads = [], [], {}
    cv_child = None
    for cutoff in CUTOFFS:
        y = labels(lo, hi, cutoff)
        print(f"age < {cutoff}: {int((y == 1).sum())} younger, {int((y == 0).sum())} not, "
              f"{int((y < 0).sum())} left out", flush=True)
        model, c, cv = fit_head(x, probes, y, args.seed)
        coefs.append(model.coef_[0])
        intercepts.append(model.intercept_[0])
        heads[f"under_{cutoff}"] = {"C": c, "younger": int((y == 1).sum()), "not": int((y == 0).sum())}
        if cutoff == CUTOFFS[0]:
            cv_child = cv
    adults = lo >= 18
    flag_at = float(np.quantile(cv_child[adults], 1 - args.adult_flag_rate))
    young = hi < CUTOFFS[0]
    recall_cv = float((cv_child[young] >= flag_at).mean())
    print(f"flag at P(age < 13) >= {flag_at:.4f}: cross-validated recall of training children {recall_cv:.3f}, "
          f"adults flagged {(cv_child[adults] >= flag_at).mean():.3f}", flush=True)
    np.savez(args.out, coef=np.array(coefs, np.float32), intercept=np.array(intercepts, np.float32),
             cutoffs=np.array(CUTOFFS), descriptor_model=DESCRIPTOR_MODEL, flag_at=flag_at)
    args.out.with_suffix(".json").write_text(json.dumps({
        "command": "python -m facecodec.train.age_faces && python -m facecodec.train.age_probe "
                   f"--adult-flag-rate {args.adult_flag_rate} --seed {args.seed}",
        "descriptor_model": DESCRIPTOR_MODEL,
        "training_faces": counts,
        "training_sets": "UTKFace (non-held-out part of a seeded sample) + FairFace train split (sample); "
                         "each face as float descriptor and as decoded base layer (profile scalable)",
        "heads": heads,
        "flag_at": round(flag_at, 6),
        "flag_rule": f"P(age < 13) at which {args.adult_flag_rate:.0%} of training adults (18+) are flagged "
                     "(5-fold cross-validated predictions)",
        "cross_validated": {"recall_under_13": round(recall_cv, 4),
                            "adults_flagged": round(float((cv_child[adults] >= flag_at).mean()), 4)},
        "held_out_figures": "bench/results/minors.json (python bench/minors.py)",
    }, indent=2) + "\n")
    print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
