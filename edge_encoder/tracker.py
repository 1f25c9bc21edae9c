"""One uplink per person, not per frame: faces of one camera linked across frames into tracks.

A person standing in view is detected in every frame; coding and uplinking each detection would send
the cloud hundreds of copies of one face. Each camera's faces are linked to its open tracks by
descriptor similarity, helped by box overlap: a face joins a track when its cosine to the track's
last face reaches `link` (the pair score that two faces of different people reach with probability
1e-4, from the base layer's calibration, as the analyzer links faces), or when its box overlaps the
track's last box (IoU >= `min_iou`) and its cosine reaches `near` (pair FAR 1e-2). A track uplinks
its first face, then again only for a clearly better face (quality: a face passing the quality gate
after ones that did not, or a score `better_by` times the best so far), and closes after
`timeout_s` without a face (of the camera's capture clock, or of the edge's own clock when the camera
sends nothing more: `expire`). Closed tracks are handed out once by `closed()`, so the edge can tell
the cloud when a person was last seen, not only when their face was last uplinked. Linking is greedy
by cosine, one face per track per frame.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from facecodec.frontend.quality import FaceQuality

MAX_TRACKS_PER_CAMERA = 256  # a crowd beyond this opens new tracks for the oldest people


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
    touched: float = field(default_factory=time.monotonic)  # the edge's clock at the track's last face


@dataclass(frozen=True)
class ClosedTrack:
    camera_id: str
    track: Track


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
    _closed: list[ClosedTrack] = field(default_factory=list)
    counts: dict[str, CameraCounts] = field(default_factory=dict)

    def assign(self, camera_id: str, at: datetime, boxes: list[tuple[float, float, float, float]],
               descriptors: np.ndarray, qualities: list[FaceQuality]) -> list[Assignment]:
        """Link one frame's faces to the camera's tracks; say which to uplink."""
        tracks = []
        for t in self._tracks.get(camera_id, []):
            if 0 <= (at - t.last_seen).total_seconds() <= self.timeout_s:
                tracks.append(t)
            else:
                self._closed.append(ClosedTrack(camera_id, t))
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
            score, ok = quality.score, quality.ok
            if i in matched:
                track = tracks[matched[i]]
                track.box, track.descriptor, track.last_seen, track.faces = box, descriptor, at, track.faces + 1
                track.touched = time.monotonic()
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
        tracks.sort(key=lambda t: t.last_seen)
        self._closed += [ClosedTrack(camera_id, t) for t in tracks[:-MAX_TRACKS_PER_CAMERA]]
        self._tracks[camera_id] = tracks[-MAX_TRACKS_PER_CAMERA:]
        return out

    def expire(self, now: float | None = None) -> None:
        """Close the tracks whose camera has sent no face of them for `timeout_s` of the edge's clock."""
        now = time.monotonic() if now is None else now
        for camera_id, tracks in self._tracks.items():
            idle = [t for t in tracks if now - t.touched > self.timeout_s]
            if idle:
                self._closed += [ClosedTrack(camera_id, t) for t in idle]
                self._tracks[camera_id] = [t for t in tracks if now - t.touched <= self.timeout_s]

    def closed(self) -> list[ClosedTrack]:
        """The tracks closed since the last call, each handed out once."""
        out, self._closed = self._closed, []
        return out

    def still_open(self) -> list[ClosedTrack]:
        """A copy of every track not yet handed out by `closed` (open, or closed since), as it stands."""
        return ([ClosedTrack(camera_id, replace(t)) for camera_id, tracks in self._tracks.items() for t in tracks]
                + [ClosedTrack(c.camera_id, replace(c.track)) for c in self._closed])

    def boxes(self, camera_id: str) -> list[tuple[float, float, float, float]]:
        """Where the camera's open tracks last saw their person."""
        return [t.box for t in self._tracks.get(camera_id, [])]

    def open_tracks(self, camera_id: str) -> int:
        return len(self._tracks.get(camera_id, []))
