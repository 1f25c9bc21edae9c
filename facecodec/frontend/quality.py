"""Is a detected face good enough to recognise? Size, sharpness and head turn, from what the front end
already computed (box, 5 landmarks, aligned crop): no extra model, well under a millisecond per face.

A face that fails a check is still coded and kept (a person may want to see it), but it is not matched
against the gallery and not accepted as an enrolment template: on such faces the recogniser's scores
say more about the blur or the pose than about the person, and strangers get named.

Thresholds were set from the spread of posed photos, looking at image statistics only (no recognition
score): sharpness 25 is the 0.5th percentile of all LFW crops (CelebA: ~1st), yaw 0.9 about LFW's 99th,
so a face that fails is really worse than a press photo. What the gate then rejects on
held-out sets is in `bench/results/open_set.json` (`quality_rejected_share`: LFW evaluation 1.6%, CFP
17.7%, mostly its profiles).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_FACE_WIDTH_PX = 32.0  # detection box width in the frame: below it, 112x112 is mostly upsampling
MIN_SHARPNESS = 25.0  # variance of the Laplacian of the aligned grey crop (LFW training: 0.5% below)
MAX_YAW = 0.9  # |nose offset from the eyes' midpoint| / half the eye distance: 0 frontal, >1 profile

ISSUES = ("too_small", "blurred", "turned_away")


@dataclass(frozen=True)
class FaceQuality:
    face_width_px: float
    sharpness: float
    yaw: float
    issues: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def score(self) -> float:
        """One number to rank faces of a person by, in [0, 1]: bigger (up to 160 px), sharper (up to a
        Laplacian variance of 200) and more frontal is better; each factor halves the score at worst,
        so a face is never ranked by one weakness alone. The edge's tracker uplinks a clearly better
        face by it, and its minimum-quality gate (EDGE_MIN_QUALITY) reads it."""
        size = min(self.face_width_px, 160.0) / 160.0
        sharp = min(self.sharpness, 200.0) / 200.0
        frontal = max(0.0, 1.0 - min(self.yaw, 1.0))
        return size * (0.5 + 0.5 * sharp) * (0.5 + 0.5 * frontal)


def sharpness(crop: np.ndarray) -> float:
    import cv2

    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def yaw(points: np.ndarray) -> float:
    """Head turn from 5 landmarks (eyes, nose, mouth corners), independent of roll and scale: where the
    nose tip falls along the line between the eyes, relative to their midpoint."""
    left, right, nose = (np.asarray(points[i], np.float64) for i in range(3))
    axis = right - left
    half = float(np.dot(axis, axis)) / 2
    if half < 1e-6:
        return float("inf")
    return abs(float(np.dot(nose - (left + right) / 2, axis)) / half)


def issues_of(face_width_px: float, sharp: float, turn: float) -> tuple[str, ...]:
    out = []
    if face_width_px < MIN_FACE_WIDTH_PX:
        out.append("too_small")
    if sharp < MIN_SHARPNESS:
        out.append("blurred")
    if not turn <= MAX_YAW:
        out.append("turned_away")
    return tuple(out)


def assess(box: tuple[float, float, float, float], points: np.ndarray, crop: np.ndarray) -> FaceQuality:
    width = float(box[2] - box[0])
    sharp, turn = sharpness(crop), yaw(points)
    return FaceQuality(width, sharp, turn, issues_of(width, sharp, turn))


def passes(crops: np.ndarray, points68: np.ndarray, face_width_px: float = 112.0) -> np.ndarray:
    """Quality verdicts for prepared faces (`facecodec.train.prepare` keeps crops and 68 landmarks but no
    box; the data sets' faces are at least as wide as the crop, so size is taken as passing)."""
    from facecodec.frontend.landmarks import five_points

    return np.array([not issues_of(face_width_px, sharpness(c), yaw(five_points(p))) for c, p in zip(crops, points68)],
                    dtype=bool)


def prepared_scores(crops: np.ndarray, points68: np.ndarray) -> np.ndarray:
    """`FaceQuality.score` of prepared faces, the face's width taken as the span of its jaw line (68-point
    landmarks 0-16, in the source image), which is close to the detector's box width."""
    from facecodec.frontend.landmarks import five_points

    widths = np.ptp(points68[:, :17, 0], axis=1)
    return np.array([FaceQuality(float(w), sharpness(c), yaw(five_points(p))).score
                     for w, c, p in zip(widths, crops, points68)], np.float32)
