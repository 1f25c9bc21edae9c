"""Does a face look like a child's? A logistic probe on the recogniser's own descriptor.

No age model ships in a package this project can install (`../shared/offline-assets.md`), so the
analyzer's 512-d descriptor, which it has for every face anyway, is the input: a linear read-out of it
predicts P(age < 13) and P(age < 18). Trained by `python -m facecodec.train.age_probe` on age-labelled
faces (UTKFace, FairFace) run through this front end; its measured quality is in the weights' JSON and
`bench/results/minors.json`. It costs one 512-d dot product per face.

It is a proxy, not an age estimate: the descriptor was trained to ignore age, so what it keeps of it is
what makes children hard to tell apart too. Read the measured precision and recall before relying on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

WEIGHTS = Path(__file__).with_name("weights") / "child_probe.npz"


@dataclass(frozen=True)
class ChildLook:
    probability: float  # P(age < 13) from the probe
    minor_probability: float  # P(age < 18)
    flagged: bool  # probability reached the probe's flag threshold


class ChildProbe:
    """Logistic heads over a unit descriptor of one recogniser; `flag_at` is the P(age < 13) at which a
    face is flagged (chosen on training faces, see the weights' JSON)."""

    def __init__(self, path: Path = WEIGHTS) -> None:
        with np.load(path) as z:
            self.coef = z["coef"].astype(np.float64)  # heads x D: age < 13, age < 18
            self.intercept = z["intercept"].astype(np.float64)
            self.cutoffs = tuple(int(c) for c in z["cutoffs"])
            self.descriptor_model = str(z["descriptor_model"])
            self.flag_at = float(z["flag_at"])
        meta = path.with_suffix(".json")
        self.info = json.loads(meta.read_text()) if meta.exists() else {}

    def probabilities(self, descriptors: np.ndarray) -> np.ndarray:
        """N x heads probabilities for N descriptors (each made unit length first, as the analyzer's)."""
        x = np.atleast_2d(np.asarray(descriptors, np.float64))
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return 1.0 / (1.0 + np.exp(-(x @ self.coef.T + self.intercept)))

    def look(self, descriptor: np.ndarray, model: str, flag_at: float | None = None) -> ChildLook | None:
        """The probe's verdict on one face; None for another recogniser's descriptor (not assessed)."""
        if model != self.descriptor_model or np.asarray(descriptor).shape[-1] != self.coef.shape[1]:
            return None
        child, minor = (float(p) for p in self.probabilities(descriptor)[0])
        return ChildLook(round(child, 4), round(minor, 4), child >= (self.flag_at if flag_at is None else flag_at))


@cache
def child_probe() -> ChildProbe:
    return ChildProbe()
