"""The open-set decision: name a face only when its best identity clears the threshold that keeps the
false positive identification rate (strangers named as someone) at the operator's target for the
gallery as it is now. See `facecodec.openset` for the model behind the threshold."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from cloud_analyzer.gallery import Gallery, Match
from facecodec.openset import OpenSetCalibration, OperatingPoint, probe_key


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
    fpir_upper: float | None = None  # upper end of the FPIR's 95% interval, given the calibration's check of the cell
    calibration_caveats: tuple[str, ...] = ()  # where the gallery or probe is outside what calibration covered
    calibrated_on: str = ""  # the calibration's sources
    quality_band: str = "good"  # the probe's band, whose tails set the threshold


class OpenSetPolicy:
    """Operating threshold from a target FPIR, recomputed whenever the gallery changes; or a fixed cosine
    set by the operator, whose FPIR is then reported instead of targeted."""

    def __init__(self, target_fpir: float, fixed_threshold: float | None = None) -> None:
        if not 0 < target_fpir < 1:
            raise ValueError("target FPIR must be between 0 and 1")
        self.target_fpir, self.fixed_threshold = target_fpir, fixed_threshold
        self._cache: dict[tuple, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def point(self, calibration: OpenSetCalibration, enrol_counts: dict[int, int], probe_frames: int, version: int,
              band: str = "good") -> OperatingPoint:
        """Threshold, FPIR, its upper bound and caveats for a gallery of this make-up and a probe of this
        many fused frames in this quality band."""
        key = (id(calibration), version, tuple(sorted(enrol_counts.items())), probe_key(probe_frames), band)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        point = calibration.operating_point(self.target_fpir, enrol_counts, probe_frames, band, self.fixed_threshold)
        with self._lock:
            if len(self._cache) > 256:  # old gallery versions
                self._cache.clear()
            self._cache[key] = point
        return point

    def operating_point(
        self, calibration: OpenSetCalibration, enrol_counts: dict[int, int], probe_frames: int, version: int,
        band: str = "good",
    ) -> tuple[float, float]:
        """(threshold, FPIR) for a gallery of this make-up and a probe of this many fused frames."""
        point = self.point(calibration, enrol_counts, probe_frames, version, band)
        return point.threshold, point.fpir

    def decide(
        self, gallery: Gallery, descriptor: np.ndarray, model: str, calibration: OpenSetCalibration,
        probe_frames: int = 1, k: int = 1, band: str = "good",
    ) -> tuple[Decision, list[Match]]:
        """The decision on the best candidate, and the top-k candidates it was taken from.

        Corrections (cloud_analyzer/corrections.py) act here, so every route deciding through this
        method inherits them: the best candidate must clear its own threshold override where that is
        stricter than the gallery's, and is not named when the probe is at least as close to one of the
        faces people said are not that identity (its negatives) as to its template. Nothing else is
        named instead: a correction can only make the decision more cautious."""
        view, candidates = gallery.search(descriptor, model, k)
        point = self.point(calibration, view.enrol_counts, probe_frames, view.version, band)
        threshold, fpir = point.threshold, point.fpir
        honest = {"fpir_upper": point.fpir_upper, "calibration_caveats": point.caveats,
                  "calibrated_on": calibration.sources, "quality_band": band}
        best = candidates[0] if candidates else None
        if best is None:
            return Decision(None, None, threshold, fpir, view.size, probe_key(probe_frames), **honest), candidates
        override = best.threshold_override is not None and best.threshold_override > threshold
        if override:
            threshold = float(best.threshold_override)
        negative = gallery.closest_negative(best.identity_id, descriptor)
        cleared = best.similarity >= threshold
        rejected = cleared and negative is not None and negative >= best.similarity
        match = best if cleared and not rejected else None
        return Decision(match, best, threshold, fpir, view.size, probe_key(probe_frames), override, negative,
                        rejected, **honest), candidates
