"""The open-set decision: name a face only when its best identity clears the threshold that keeps the
false positive identification rate (strangers named as someone) at the operator's target for the
gallery as it is now. See `facecodec.openset` for the model behind the threshold."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from cloud_analyzer.gallery import Gallery, Match
from facecodec.openset import OpenSetCalibration, probe_key


@dataclass(frozen=True)
class Decision:
    match: Match | None  # the named identity, if any
    best: Match | None  # best candidate regardless of the threshold
    threshold: float  # cosine the best candidate had to reach (its override, where that is stricter)
    fpir: float  # expected share of strangers named at the gallery's threshold (at most that with an override)
    gallery_size: int
    probe_frames: int
    threshold_override: bool = False  # `threshold` is the best candidate's own, stricter than the gallery's
    negative_similarity: float | None = None  # probe's highest cosine to the best candidate's negatives
    rejected_by_negative: bool = False  # the best candidate cleared its threshold but is closer to a negative


class OpenSetPolicy:
    """Operating threshold from a target FPIR, recomputed whenever the gallery changes; or a fixed cosine
    set by the operator, whose FPIR is then reported instead of targeted."""

    def __init__(self, target_fpir: float, fixed_threshold: float | None = None) -> None:
        if not 0 < target_fpir < 1:
            raise ValueError("target FPIR must be between 0 and 1")
        self.target_fpir, self.fixed_threshold = target_fpir, fixed_threshold
        self._cache: dict[tuple, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def operating_point(
        self, calibration: OpenSetCalibration, enrol_counts: dict[int, int], probe_frames: int, version: int,
    ) -> tuple[float, float]:
        """(threshold, FPIR) for a gallery of this make-up and a probe of this many fused frames."""
        key = (id(calibration), version, tuple(sorted(enrol_counts.items())), probe_key(probe_frames))
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        if self.fixed_threshold is None:
            threshold = calibration.threshold(self.target_fpir, enrol_counts, probe_frames)
        else:
            threshold = self.fixed_threshold
        point = (threshold, calibration.fpir(threshold, enrol_counts, probe_frames))
        with self._lock:
            if len(self._cache) > 256:  # old gallery versions
                self._cache.clear()
            self._cache[key] = point
        return point

    def decide(
        self, gallery: Gallery, descriptor: np.ndarray, model: str, calibration: OpenSetCalibration,
        probe_frames: int = 1, k: int = 1,
    ) -> tuple[Decision, list[Match]]:
        """The decision on the best candidate, and the top-k candidates it was taken from.

        Corrections (cloud_analyzer/corrections.py) act here, so every route deciding through this
        method inherits them: the best candidate must clear its own threshold override where that is
        stricter than the gallery's, and is not named when the probe is at least as close to one of the
        faces people said are not that identity (its negatives) as to its template. Nothing else is
        named instead: a correction can only make the decision more cautious."""
        view, candidates = gallery.search(descriptor, model, k)
        threshold, fpir = self.operating_point(calibration, view.enrol_counts, probe_frames, view.version)
        best = candidates[0] if candidates else None
        if best is None:
            return Decision(None, None, threshold, fpir, view.size, probe_key(probe_frames)), candidates
        override = best.threshold_override is not None and best.threshold_override > threshold
        if override:
            threshold = float(best.threshold_override)
        negative = gallery.closest_negative(best.identity_id, descriptor)
        cleared = best.similarity >= threshold
        rejected = cleared and negative is not None and negative >= best.similarity
        match = best if cleared and not rejected else None
        return Decision(match, best, threshold, fpir, view.size, probe_key(probe_frames), override, negative,
                        rejected), candidates
