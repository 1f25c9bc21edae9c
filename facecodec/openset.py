"""Open-set identification: one template per identity, and the threshold that keeps FPIR at a target.

A camera network mostly sees people who are not enrolled. The error that matters is the FPIR (false
positive identification rate): the share of *non-enrolled* probes that get named as someone. A
threshold calibrated per comparison (FAR per pair) does not bound it: a stranger is compared with
every identity, so

    FPIR(t) = 1 - prod_i (1 - FAR_i(t))                          (independent comparisons)

grows with the gallery. `OpenSetCalibration` holds the per-comparison false-match rate FAR(t) of one
probe against one *identity template* (the normalised mean of its enrolment descriptors), measured on
training identities only, for 1, 2 and 3+ enrolment images and 1, 2 and 3+ fused probe frames (a mean
of more images sits closer to the identity's centre, so its impostor scores spread differently).
Given the gallery's make-up it solves c * FPIR(t) = target for t, where the factor c >= 1 covers the
spread between galleries (see `fpir_correction`). Below the rates the calibration measured
the tail is extrapolated log-linearly from its last decades, which overestimates FAR for the
light-tailed cosine distributions seen here, so the threshold errs high (fewer strangers named).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

MAX_ENROL_KEY = 3  # identities with more enrolment images behave like 3 (their mean is as tight)
MAX_PROBE_FRAMES = 3
# Below a thousandth of the gallery, FPIR and per-comparison FAR are indistinguishable; this floor
# only keeps the solver away from log(0).
_MIN_FAR = 1e-15


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


def identity_template(descriptors: np.ndarray) -> np.ndarray:
    """One vector per identity (or per fused probe): the normalised mean of unit descriptors.

    Averaging cancels what varies between photos (pose, light, expression) and keeps what is shared,
    so one comparison per identity scores mated probes higher than the best of several single
    templates while a stranger meets each identity once, not once per photo."""
    descriptors = np.atleast_2d(np.asarray(descriptors, np.float32))
    return unit(unit(descriptors).mean(0))


def enrol_key(n_images: int) -> int:
    return max(1, min(int(n_images), MAX_ENROL_KEY))


def probe_key(n_frames: int) -> int:
    return max(1, min(int(n_frames), MAX_PROBE_FRAMES))


@dataclass(frozen=True)
class ImpostorTail:
    """log10 FAR of one impostor comparison as a function of the cosine threshold (accept iff >= t)."""

    thresholds: tuple[float, ...]  # increasing
    log10_far: tuple[float, ...]  # decreasing, same length
    comparisons: int  # impostor comparisons it was measured on

    @classmethod
    def from_scores(cls, impostor: np.ndarray, min_tail: int = 20, points: int = 48) -> ImpostorTail:
        """Thresholds at log-spaced FARs from 0.3 down to the rate still backed by `min_tail` scores."""
        s = np.sort(np.asarray(impostor, np.float64).reshape(-1))[::-1]
        n = len(s)
        if n < 10 * min_tail:
            raise ValueError(f"need at least {10 * min_tail} impostor scores, got {n}")
        fars = np.logspace(np.log10(0.3), np.log10(min_tail / n), points)
        # Accepting scores >= s[k-1] accepts k scores: the threshold for FAR f is the ceil(f*n)-th highest.
        ks = np.maximum(np.ceil(fars * n).astype(int), 1)
        thresholds = s[ks - 1]  # rises as the FAR falls
        keep = np.concatenate([[True], np.diff(thresholds) > 0])  # ties would make far(t) ambiguous
        t, f = thresholds[keep], np.log10(ks[keep] / n)
        return cls(tuple(float(v) for v in t), tuple(float(v) for v in f), n)

    def _slope(self) -> float:
        """d log10 FAR / d t over the last 1.5 measured decades (negative)."""
        t, f = np.array(self.thresholds), np.array(self.log10_far)
        sel = f <= f[-1] + 1.5
        if sel.sum() < 2:
            sel[-2:] = True
        slope = np.polyfit(t[sel], f[sel], 1)[0]
        return float(min(slope, -1.0))  # never flatter than a decade per unit cosine

    def far(self, threshold: float) -> float:
        t, f = np.array(self.thresholds), np.array(self.log10_far)
        if threshold < t[0]:  # below every measured point: as good as accepting everyone
            return 1.0
        if threshold <= t[-1]:
            return float(10 ** np.interp(threshold, t, f))
        return max(float(10 ** (f[-1] + self._slope() * (threshold - t[-1]))), _MIN_FAR)

    def threshold_at(self, far: float) -> float:
        """The lowest measured threshold whose FAR is at most `far` (within the measured range)."""
        t, f = np.array(self.thresholds), np.array(self.log10_far)
        i = int(np.searchsorted(-f, -np.log10(far)))  # first point with log10 FAR <= log10(far)
        return float(t[min(i, len(t) - 1)])

    def to_json(self) -> dict:
        return {"thresholds": [round(v, 6) for v in self.thresholds],
                "log10_far": [round(v, 4) for v in self.log10_far], "comparisons": self.comparisons}

    @classmethod
    def from_json(cls, data: Mapping) -> ImpostorTail:
        return cls(tuple(data["thresholds"]), tuple(data["log10_far"]), int(data["comparisons"]))


@dataclass(frozen=True)
class OpenSetCalibration:
    tails: dict[tuple[int, int], ImpostorTail]  # (enrol key, probe key) -> tail
    # The FPIR of one gallery depends on who is in it (some people resemble many strangers): the product
    # formula is right on average, and this factor makes it right for 9 in 10 galleries drawn from the
    # calibration faces themselves (`calibrate`), so a deployment's own gallery is unlikely to be unlucky.
    fpir_correction: float = 1.0

    def tail(self, enrol_images: int, probe_frames: int) -> ImpostorTail:
        return self.tails[(enrol_key(enrol_images), probe_key(probe_frames))]

    def fpir(self, threshold: float, enrol_counts: Mapping[int, int], probe_frames: int = 1) -> float:
        """Expected FPIR at `threshold` for a gallery with `enrol_counts[k]` identities of k images."""
        log_pass = 0.0
        counts: Counter[int] = Counter()
        for k, n in enrol_counts.items():
            counts[enrol_key(k)] += n
        for k, n in counts.items():
            far = min(self.tail(k, probe_frames).far(threshold), 1 - 1e-12)
            log_pass += n * math.log1p(-far)
        return min(1.0, self.fpir_correction * -math.expm1(log_pass))

    def threshold(self, target_fpir: float, enrol_counts: Mapping[int, int], probe_frames: int = 1) -> float:
        """The lowest cosine threshold whose expected FPIR is at most `target_fpir`."""
        if not 0 < target_fpir < 1:
            raise ValueError("target FPIR must be between 0 and 1")
        lo, hi = -1.0, 1.0
        if not sum(enrol_counts.values()):
            return lo
        for _ in range(60):  # bisection: FPIR falls monotonically as the threshold rises
            mid = (lo + hi) / 2
            if self.fpir(mid, enrol_counts, probe_frames) > target_fpir:
                lo = mid
            else:
                hi = mid
        return hi

    def to_json(self) -> dict:
        return {"fpir_correction": round(self.fpir_correction, 4),
                "tails": {f"{k}x{m}": tail.to_json() for (k, m), tail in sorted(self.tails.items())}}

    @classmethod
    def from_json(cls, data: Mapping) -> OpenSetCalibration:
        tails = {}
        for key, value in data["tails"].items():
            k, m = (int(v) for v in key.split("x"))
            tails[(k, m)] = ImpostorTail.from_json(value)
        return cls(tails, float(data.get("fpir_correction", 1.0)))


def calibrate(descriptors: np.ndarray, identities: np.ndarray, probe_descriptors: np.ndarray | None = None,
              seed: int = 0) -> OpenSetCalibration:
    """Impostor tails from labelled descriptors of *training* identities.

    For each enrolment size k, every identity with at least k images gets a template from k random
    images; for each probe size m, each identity gives disjoint groups of m images, fused. Every
    probe is scored against every template of another identity. `probe_descriptors` (row for row the
    same faces) are what probes look like when they differ from templates: decoded base layers against
    templates enrolled from the float descriptor."""
    rng = np.random.default_rng(seed)
    descriptors = unit(np.asarray(descriptors, np.float32))
    probe_side = descriptors if probe_descriptors is None else unit(np.asarray(probe_descriptors, np.float32))
    groups = [np.flatnonzero(identities == i) for i in np.unique(identities)]
    tails: dict[tuple[int, int], ImpostorTail] = {}
    for m in range(1, MAX_PROBE_FRAMES + 1):
        probes, probe_owner = [], []
        for owner, idx in enumerate(groups):
            shuffled = rng.permutation(idx)
            for start in range(0, len(shuffled) - m + 1, m):
                probes.append(identity_template(probe_side[shuffled[start : start + m]]))
                probe_owner.append(owner)
        p, p_owner = np.stack(probes), np.array(probe_owner)
        for k in range(1, MAX_ENROL_KEY + 1):
            owners = [o for o, idx in enumerate(groups) if len(idx) >= k]
            templates = np.stack([identity_template(descriptors[rng.choice(groups[o], k, replace=False)])
                                  for o in owners])
            scores = p @ templates.T
            impostor = scores[p_owner[:, None] != np.array(owners)[None, :]]
            tails[(k, m)] = ImpostorTail.from_scores(impostor)
    independent = OpenSetCalibration(tails)
    return OpenSetCalibration(tails, _fpir_correction(independent, descriptors, probe_side, groups, rng))


def _fpir_correction(calibration: OpenSetCalibration, descriptors: np.ndarray, probe_side: np.ndarray,
                     groups: list[np.ndarray], rng: np.random.Generator, target: float = 0.01,
                     draws: int = 10) -> float:
    """90th percentile of measured FPIR / predicted FPIR over galleries of the calibration faces
    themselves: G identities enrolled from 1 or 3 photos, every photo of the other identities a
    stranger's probe, at the threshold the product formula gives for `target`. Never below 1."""
    ratios = []
    for gallery in (100, min(1000, len(groups) // 3)):
        for k in (1, MAX_ENROL_KEY):
            for _ in range(draws):
                order = rng.permutation(len(groups))
                enrolled = [o for o in order if len(groups[o]) >= k][:gallery]
                taken = set(enrolled)
                strangers = np.concatenate([groups[o] for o in order if o not in taken])
                templates = np.stack([identity_template(descriptors[rng.choice(groups[o], k, replace=False)])
                                      for o in enrolled])
                threshold = calibration.threshold(target, {k: len(enrolled)})
                best = (probe_side[strangers] @ templates.T).max(1)
                ratios.append(float(np.mean(best >= threshold)) / target)
    return max(1.0, float(np.quantile(ratios, 0.9)))
