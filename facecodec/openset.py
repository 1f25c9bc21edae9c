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

The product formula is checked, not trusted: `facecodec.openset_checks` draws galleries of 100 and 1,000
from each calibration source on its own (LFW, CFP, FG-NET adults, Glint, CelebA, AT&T training people),
names its strangers at the formula's threshold and keeps, per cell (gallery size, enrolment photos,
probe frames, quality band), the source whose strangers were named most often. That measured/predicted
ratio is the cell's correction, so the stated FPIR is the one of the hardest kind of face calibrated on;
the upper end of its 95% interval comes from how many strangers that check had (`fpir_upper`).
Quality bands: probes whose quality score (`facecodec.frontend.quality.FaceQuality.score`) is below
`LOW_QUALITY_SCORE` have their own tails and checks (smaller, blurrier, more turned faces).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

QUALITY_BANDS = ("good", "low")
# Below this score (0-1: size, sharpness, frontality; about a sharp frontal face 75 px wide) a probe is
# in the "low" band, with tails and checks of its own: on the calibration faces, strangers' probes below
# it were named 3-7x as often as the pooled tails predict (CFP 001-250), above it 1.2-1.9x.
LOW_QUALITY_SCORE = 0.45
CHECK_TARGET = 0.01  # the target FPIR the cells are checked at
# A gallery more than this times the largest one the calibration checked is beyond what it covers.
GALLERY_COVER_FACTOR = 3.0
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


def quality_band(score: float | None) -> str:
    """The band a probe's tails come from; an unknown score (older edges) counts as good."""
    return "low" if score is not None and score < LOW_QUALITY_SCORE else "good"


def clopper_pearson_upper(named: int, strangers: int, confidence: float = 0.95) -> float:
    """Upper end of the two-sided `confidence` interval of a binomial rate named/strangers."""
    from scipy.stats import beta

    if strangers <= 0:
        return 1.0
    if named >= strangers:
        return 1.0
    return float(beta.ppf(1 - (1 - confidence) / 2, named + 1, strangers - named))


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
class CellCheck:
    """Strangers named at the product formula's threshold for `CHECK_TARGET`, in galleries drawn from one
    calibration source: the measured/predicted ratio of one cell."""

    gallery: int
    enrol: int  # enrol key
    frames: int  # probe key
    band: str
    source: str
    named: int
    strangers: int  # non-mated probes over every draw
    stranger_people: int

    @property
    def ratio(self) -> float:
        return self.named / max(self.strangers, 1) / CHECK_TARGET

    @property
    def ratio_upper(self) -> float:
        return clopper_pearson_upper(self.named, self.strangers) / CHECK_TARGET

    def to_json(self) -> dict:
        return {"gallery": self.gallery, "enrol": self.enrol, "frames": self.frames, "band": self.band,
                "source": self.source, "named": self.named, "strangers": self.strangers,
                "stranger_people": self.stranger_people}


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    fpir: float  # expected FPIR: the product formula times the hardest calibration source's measured ratio
    fpir_upper: float  # upper end of its 95% interval, given the strangers that cell's check had
    caveats: tuple[str, ...]  # where the gallery or the probe is outside what the calibration checked


@dataclass(frozen=True)
class OpenSetCalibration:
    tails: dict[tuple[int, int], ImpostorTail]  # (enrol key, probe key) -> tail of good-quality probes
    # The FPIR of one gallery depends on who is in it (some people resemble many strangers): the product
    # formula is right on average, and this factor makes it right for 9 in 10 galleries drawn from the
    # calibration faces themselves (`calibrate`), so a deployment's own gallery is unlikely to be unlucky.
    # Calibrations with `checks` use it only as a floor under each cell's own factor.
    fpir_correction: float = 1.0
    band_tails: dict[tuple[str, int, int], ImpostorTail] = field(default_factory=dict)  # other bands' tails
    checks: tuple[CellCheck, ...] = ()
    sources: str = ""  # "calibrated on ..."

    def tail(self, enrol_images: int, probe_frames: int, band: str = "good") -> ImpostorTail:
        key = (enrol_key(enrol_images), probe_key(probe_frames))
        return self.band_tails.get((band, *key), self.tails[key])

    def _check(self, enrol: int, frames: int, band: str, gallery: int) -> CellCheck | None:
        """The hardest source's check of the nearest gallery size (log scale) in this cell. An enrolment
        or frame count the checks did not measure (2) takes the larger of its measured neighbours'."""
        in_band = [c for c in self.checks if c.band == band]
        enrols = {c.enrol for c in in_band}
        frame_keys = {c.frames for c in in_band}
        want_e = {enrol} if enrol in enrols else enrols
        want_f = {probe_key(frames)} if probe_key(frames) in frame_keys else frame_keys
        cell = [c for c in in_band if c.enrol in want_e and c.frames in want_f]
        if not cell:
            return None
        near = min({c.gallery for c in cell}, key=lambda g: abs(math.log(g) - math.log(max(gallery, 1))))
        return max((c for c in cell if c.gallery == near), key=lambda c: c.ratio)

    def correction(self, enrol_counts: Mapping[int, int], probe_frames: int = 1, band: str = "good",
                   upper: bool = False) -> float:
        """The factor on the product formula: the largest over the enrolment sizes present."""
        gallery = sum(enrol_counts.values())
        factor = self.fpir_correction  # a floor: a cell's check may only make the rate stated higher
        for k in {enrol_key(k) for k, n in enrol_counts.items() if n}:
            check = self._check(k, probe_frames, band, gallery) or self._check(k, probe_frames, "good", gallery)
            if check is not None:
                factor = max(factor, check.ratio_upper if upper else check.ratio)
        return factor

    def _independent(self, threshold: float, enrol_counts: Mapping[int, int], probe_frames: int, band: str) -> float:
        log_pass = 0.0
        counts: Counter[int] = Counter()
        for k, n in enrol_counts.items():
            counts[enrol_key(k)] += n
        for k, n in counts.items():
            far = min(self.tail(k, probe_frames, band).far(threshold), 1 - 1e-12)
            log_pass += n * math.log1p(-far)
        return -math.expm1(log_pass)

    def fpir(self, threshold: float, enrol_counts: Mapping[int, int], probe_frames: int = 1,
             band: str = "good") -> float:
        """Expected FPIR at `threshold` for a gallery with `enrol_counts[k]` identities of k images."""
        independent = self._independent(threshold, enrol_counts, probe_frames, band)
        return min(1.0, self.correction(enrol_counts, probe_frames, band) * independent)

    def fpir_upper(self, threshold: float, enrol_counts: Mapping[int, int], probe_frames: int = 1,
                   band: str = "good") -> float:
        """Upper end of the FPIR's 95% interval: the cell's check could only bound its ratio so tightly."""
        independent = self._independent(threshold, enrol_counts, probe_frames, band)
        factor = self.correction(enrol_counts, probe_frames, band, upper=True)
        return min(1.0, max(factor, self.correction(enrol_counts, probe_frames, band)) * independent)

    def caveats(self, enrol_counts: Mapping[int, int], band: str = "good") -> tuple[str, ...]:
        """Where the gallery's make-up or the probe lies outside what the calibration's checks covered."""
        out = []
        gallery = sum(enrol_counts.values())
        checked = max((c.gallery for c in self.checks), default=0)
        if gallery > GALLERY_COVER_FACTOR * checked:
            out.append("gallery_beyond_calibration")  # rate extrapolated from smaller galleries
        if enrol_counts.get(1, 0):
            out.append("single_photo_enrolment")  # stated at single-photo rates: FNIR higher, FPIR less sure
        if band != "good":
            out.append("low_quality")  # tails of the low band: fewer faces behind them
        return tuple(out)

    def threshold(self, target_fpir: float, enrol_counts: Mapping[int, int], probe_frames: int = 1,
                  band: str = "good") -> float:
        """The lowest cosine threshold whose expected FPIR is at most `target_fpir`."""
        if not 0 < target_fpir < 1:
            raise ValueError("target FPIR must be between 0 and 1")
        lo, hi = -1.0, 1.0
        if not sum(enrol_counts.values()):
            return lo
        for _ in range(60):  # bisection: FPIR falls monotonically as the threshold rises
            mid = (lo + hi) / 2
            if self.fpir(mid, enrol_counts, probe_frames, band) > target_fpir:
                lo = mid
            else:
                hi = mid
        return hi

    def operating_point(self, target_fpir: float | None, enrol_counts: Mapping[int, int], probe_frames: int = 1,
                        band: str = "good", fixed_threshold: float | None = None) -> OperatingPoint:
        t = fixed_threshold if fixed_threshold is not None else self.threshold(
            target_fpir or CHECK_TARGET, enrol_counts, probe_frames, band)
        return OperatingPoint(t, self.fpir(t, enrol_counts, probe_frames, band),
                              self.fpir_upper(t, enrol_counts, probe_frames, band), self.caveats(enrol_counts, band))

    def to_json(self) -> dict:
        return {"fpir_correction": round(self.fpir_correction, 4), "sources": self.sources,
                "tails": {f"{k}x{m}": tail.to_json() for (k, m), tail in sorted(self.tails.items())},
                "band_tails": {f"{b}/{k}x{m}": tail.to_json() for (b, k, m), tail in sorted(self.band_tails.items())},
                "checks": [c.to_json() for c in self.checks]}

    @classmethod
    def from_json(cls, data: Mapping) -> OpenSetCalibration:
        tails = {}
        for key, value in data["tails"].items():
            k, m = (int(v) for v in key.split("x"))
            tails[(k, m)] = ImpostorTail.from_json(value)
        band_tails = {}
        for key, value in data.get("band_tails", {}).items():
            band, km = key.split("/")
            k, m = (int(v) for v in km.split("x"))
            band_tails[(band, k, m)] = ImpostorTail.from_json(value)
        checks = tuple(CellCheck(**c) for c in data.get("checks", []))
        return cls(tails, float(data.get("fpir_correction", 1.0)), band_tails, checks, data.get("sources", ""))


def _probe_groups(groups: list[np.ndarray], m: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    """Disjoint groups of m photos of one identity (a fused probe), with their owners."""
    probes, owners = [], []
    for owner, idx in enumerate(groups):
        shuffled = rng.permutation(idx)
        for start in range(0, len(shuffled) - m + 1, m):
            probes.append(shuffled[start : start + m])
            owners.append(owner)
    return probes, owners


def impostor_tails(descriptors: np.ndarray, probe_side: np.ndarray, groups: list[np.ndarray],
                   probe_ok: np.ndarray, rng: np.random.Generator) -> dict[tuple[int, int], ImpostorTail]:
    """Tails of every (enrol, frames) cell: probes fused from photos where `probe_ok`, each scored against
    the templates of every other identity (k random photos of it)."""
    tails: dict[tuple[int, int], ImpostorTail] = {}
    probe_groups = [idx[probe_ok[idx]] for idx in groups]
    for m in range(1, MAX_PROBE_FRAMES + 1):
        index_groups, owners = _probe_groups(probe_groups, m, rng)
        p = np.stack([identity_template(probe_side[g]) for g in index_groups])
        p_owner = np.array(owners)
        for k in range(1, MAX_ENROL_KEY + 1):
            holders = [o for o, idx in enumerate(groups) if len(idx) >= k]
            templates = np.stack([identity_template(descriptors[rng.choice(groups[o], k, replace=False)])
                                  for o in holders])
            scores = p @ templates.T
            tails[(k, m)] = ImpostorTail.from_scores(scores[p_owner[:, None] != np.array(holders)[None, :]])
    return tails


def calibrate(descriptors: np.ndarray, identities: np.ndarray, probe_descriptors: np.ndarray | None = None,
              seed: int = 0, sources: np.ndarray | None = None, quality: np.ndarray | None = None,
              described_as: str = "") -> OpenSetCalibration:
    """Impostor tails from labelled descriptors of *training* identities.

    For each enrolment size k, every identity with at least k images gets a template from k random
    images; for each probe size m, each identity gives disjoint groups of m images, fused. Every
    probe is scored against every template of another identity. `probe_descriptors` (row for row the
    same faces) are what probes look like when they differ from templates: decoded base layers against
    templates enrolled from the float descriptor. With `quality` (each face's score), probes of the
    low band get tails of their own; with `sources` (each face's data set), every cell is checked on
    galleries of each source (`facecodec.openset_checks`) and corrected by the hardest one."""
    rng = np.random.default_rng(seed)
    descriptors = unit(np.asarray(descriptors, np.float32))
    probe_side = descriptors if probe_descriptors is None else unit(np.asarray(probe_descriptors, np.float32))
    groups = [np.flatnonzero(identities == i) for i in np.unique(identities)]
    bands = (np.where(np.asarray(quality) < LOW_QUALITY_SCORE, "low", "good") if quality is not None
             else np.full(len(descriptors), "good"))
    tails = impostor_tails(descriptors, probe_side, groups, bands == "good", rng)
    band_tails = {}
    if (bands == "low").any():
        band_tails = {("low", k, m): t for (k, m), t in
                      impostor_tails(descriptors, probe_side, groups, bands == "low", rng).items()}
    independent = OpenSetCalibration(tails, 1.0, band_tails)
    if sources is None:
        return OpenSetCalibration(tails, _fpir_correction(independent, descriptors, probe_side, groups, rng))
    from facecodec.openset_checks import check_cells

    checks = check_cells(independent, descriptors, probe_side, np.asarray(identities), np.asarray(sources), bands,
                         rng)
    return OpenSetCalibration(tails, 1.0, band_tails, tuple(checks), described_as)


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
