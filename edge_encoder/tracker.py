"""One uplink per person, not per frame: faces of one camera linked across frames into tracks.

A person standing in view is detected in every frame; coding and uplinking each detection would send
the cloud hundreds of copies of one face. Each camera's faces are linked to its open tracks by
descriptor similarity, helped by box overlap: a face joins a track when its cosine to the track's
last face reaches `link` (the pair score that two faces of different people reach with probability
1e-4, from the base layer's calibration, as the analyzer links faces), or when its box overlaps the
track's last box (IoU >= `min_iou`) and its cosine reaches `near` (pair FAR 1e-2). A track uplinks
its first face, then again only for a clearly better face (quality: a face passing the quality gate
after ones that did not, or a score `better_by` times the best so far), and closes after
`timeout_s` without a face. Linking is greedy by cosine, one face per track per frame.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from facecodec.frontend.quality import FaceQuality

MAX_TRACKS_PER_CAMERA = 256  # a crowd beyond this opens new tracks for the oldest people


def quality_score(quality: FaceQuality) -> float:
    """Bigger, sharper, more frontal is better; in (0, 1] for a usable face."""
    size = min(quality.face_width_px, 160.0) / 160.0
    sharp = min(quality.sharpness, 200.0) / 200.0
    frontal = max(0.0, 1.0 - min(quality.yaw, 1.0))
    return size * (0.5 + 0.5 * sharp) * (0.5 + 0.5 * frontal)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    track_id: str
    box: tuple[float, float, float, float]
    descriptor: np.ndarray
    first_seen: datetime
    last_seen: datetime
    best_score: float
    best_ok: bool
    faces: int = 1
    uplinks: int = 1


@dataclass(frozen=True)
class Assignment:
    track_id: str
    uplink: bool
    reason: str  # "new" (first face of a track), "better" (a clearly better face), "same" (not uplinked)


@dataclass
class CameraCounts:
    detected: int = 0
    uplinked: int = 0
    tracks_opened: int = 0


@dataclass
class FaceTracker:
    link: float
    near: float
    min_iou: float = 0.3
    timeout_s: float = 2.0
    better_by: float = 1.5
    _tracks: dict[str, list[Track]] = field(default_factory=dict)
    counts: dict[str, CameraCounts] = field(default_factory=dict)

    def assign(self, camera_id: str, at: datetime, boxes: list[tuple[float, float, float, float]],
               descriptors: np.ndarray, qualities: list[FaceQuality]) -> list[Assignment]:
        """Link one frame's faces to the camera's tracks; say which to uplink."""
        tracks = [t for t in self._tracks.get(camera_id, [])
                  if 0 <= (at - t.last_seen).total_seconds() <= self.timeout_s]
        candidates = []
        for i, (box, descriptor) in enumerate(zip(boxes, descriptors)):
            for j, track in enumerate(tracks):
                cosine = float(np.dot(descriptor, track.descriptor))
                if cosine >= self.link or (cosine >= self.near and iou(box, track.box) >= self.min_iou):
                    candidates.append((cosine, i, j))
        matched: dict[int, int] = {}
        used: set[int] = set()
        for _, i, j in sorted(candidates, reverse=True):
            if i not in matched and j not in used:
                matched[i] = j
                used.add(j)
        counts = self.counts.setdefault(camera_id, CameraCounts())
        out = []
        for i, (box, descriptor, quality) in enumerate(zip(boxes, descriptors, qualities)):
            score, ok = quality_score(quality), quality.ok
            if i in matched:
                track = tracks[matched[i]]
                track.box, track.descriptor, track.last_seen, track.faces = box, descriptor, at, track.faces + 1
                better = (ok and not track.best_ok) or (
                    ok == track.best_ok and score >= self.better_by * track.best_score)
                if better:
                    track.best_score, track.best_ok, track.uplinks = score, ok, track.uplinks + 1
                out.append(Assignment(track.track_id, better, "better" if better else "same"))
            else:
                track = Track(uuid.uuid4().hex, box, descriptor, at, at, score, ok)
                tracks.append(track)
                counts.tracks_opened += 1
                out.append(Assignment(track.track_id, True, "new"))
        counts.detected += len(out)
        counts.uplinked += sum(a.uplink for a in out)
        self._tracks[camera_id] = sorted(tracks, key=lambda t: t.last_seen)[-MAX_TRACKS_PER_CAMERA:]
        return out

    def open_tracks(self, camera_id: str) -> int:
        return len(self._tracks.get(camera_id, []))
