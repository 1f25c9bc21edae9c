"""A 0-1 `similarity` for clients that threshold it themselves (the CompreFace-compatible API, and Double
Take behind it), made so that their usual thresholds mean what this analyzer decides.

Our score is a cosine whose meaning depends on the gallery: the open-set decision names a face at the
threshold that keeps the FPIR at ANALYZER_TARGET_FPIR for the gallery as it is now. A client compares a
fixed number. So the similarity is a piecewise-linear, increasing function of the cosine through four
points:

    cosine  -1           t_unknown            t_match             1
    similarity  0     unknown_similarity   match_similarity      1

t_match is the cosine of the decision (`Decision.threshold`: FPIR at its target for this gallery); t_unknown
the cosine at UNKNOWN_RATE_FACTOR (10) times that rate, capped at 0.5. With the defaults (0.6 and 0.4,
Double Take's `match` and `unknown` confidence), a client's "match" at >= 0.60 is exactly our decision, and
its "unknown" below 0.40 means below the cosine a stranger reaches 10 times as often. For 1:1 verification
the same scale is anchored at the verification threshold (ANALYZER_VERIFY_FAR) and at 10 times that FAR.

The decision stays ours: a candidate the decision names is never below match_similarity, one it does not
name never reaches it (whatever per-identity rules the decision applies), and a face with quality issues
is never named, so its candidates stay below unknown_similarity. What a client threshold means in FPIR
on held-out faces: bench/client_similarity.py, bench/results/client_similarity.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from facecodec.openset import OpenSetCalibration

UNKNOWN_RATE_FACTOR = 10.0
BELOW = 1e-4  # how far under an anchor a capped similarity lands
_EPS = 1e-3  # anchors this close are pulled apart, so the function stays strictly increasing


@dataclass(frozen=True)
class SimilarityScale:
    match_at: float  # cosine mapped to match_similarity
    unknown_at: float  # cosine mapped to unknown_similarity
    match_similarity: float = 0.6
    unknown_similarity: float = 0.4

    def __call__(self, cosine: float) -> float:
        match_at = min(max(self.match_at, -1 + 2 * _EPS), 1 - _EPS)
        unknown_at = min(max(self.unknown_at, -1 + _EPS), match_at - _EPS)
        xs = [-1.0, unknown_at, match_at, 1.0]
        ys = [0.0, self.unknown_similarity, self.match_similarity, 1.0]
        return round(float(np.interp(cosine, xs, ys)), 5)

    def decided(self, cosine: float, named: bool, quality_ok: bool = True) -> float:
        """The similarity of a candidate, held on the side of the anchors the decision put it on."""
        value = self(cosine)
        if not quality_ok:
            return min(value, self.unknown_similarity - BELOW)
        if named:
            return max(value, self.match_similarity)
        return min(value, self.match_similarity - BELOW)


def identification_scale(calibration: OpenSetCalibration, enrol_counts: Mapping[int, int], probe_frames: int,
                         threshold: float, fpir: float, match_similarity: float = 0.6,
                         unknown_similarity: float = 0.4) -> SimilarityScale:
    """The scale of one open-set decision (`threshold`, at `fpir`) in a gallery of this make-up."""
    looser = min(0.5, max(fpir, 1e-12) * UNKNOWN_RATE_FACTOR)
    unknown_at = calibration.threshold(looser, enrol_counts, probe_frames) if sum(enrol_counts.values()) else -1.0
    return SimilarityScale(threshold, unknown_at, match_similarity, unknown_similarity)


def verification_scale(calibration: OpenSetCalibration, far: float, enrol_images: int = 1,
                       match_similarity: float = 0.6, unknown_similarity: float = 0.4) -> SimilarityScale:
    """The scale of 1:1 verification at pair false-accept rate `far` (and 10 times it)."""
    tail = calibration.tail(enrol_images, 1)
    return SimilarityScale(tail.threshold_at(far), tail.threshold_at(min(0.5, far * UNKNOWN_RATE_FACTOR)),
                           match_similarity, unknown_similarity)
