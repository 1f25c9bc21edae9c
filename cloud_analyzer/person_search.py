"""A person's unnamed faces, found by biometric search: what an identity erasure (and its preview) takes
besides the sightings named as the person.

The probe is the identity's template (the normalised mean of its enrolment descriptors: what the
gallery holds and the calibration describes). The threshold is the one the analyzer names a face at
(`OpenSetPolicy.operating_point`, the gallery as it is with the person still in it, the same as a
backfill): a face above it is one the analyzer would have named as this person had they been enrolled
when it was seen. Faces: a probe of one frame, against the history index (every decided face with a
descriptor: unknown and low-quality ones). Unknown-face clusters: the centroid of n faces is a fused
probe of n frames, so its threshold is the operating point for n frames; a cluster above it goes whole.
The 8-bit indexes only propose candidates (MARGIN below the threshold); each is re-scored with the
float cosine the analyzer decides with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import redis

from cloud_analyzer.clusters import Clusters
from cloud_analyzer.history import History
from cloud_analyzer.recognition import decode_base_layer
from facecodec.bitstream import BitstreamError
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.profiles import UnknownProfileError
from facecodec.openset import unit
from service_common.redis_keys import face_key

MARGIN = 0.02  # 8-bit scores are within ~0.01 of the float cosine: candidates this far below are re-scored


@dataclass(frozen=True)
class FaceMatch:
    face_id: str
    camera_id: str
    captured_at_ms: int
    status: str
    similarity: float  # float cosine to the person's template
    edge_id: str


@dataclass(frozen=True)
class ClusterMatch:
    cluster_id: str
    size: int
    similarity: float  # cosine of its centroid to the person's template
    threshold: float  # the operating point for a probe of `size` frames
    face_ids: list[str]


@dataclass
class PersonMatches:
    threshold: float  # for one face
    faces: list[FaceMatch] = field(default_factory=list)
    clusters: list[ClusterMatch] = field(default_factory=list)

    def face_ids(self) -> list[str]:
        """Every face to erase: the matched faces and every member of a matched cluster."""
        ids = [f.face_id for f in self.faces] + [f for c in self.clusters for f in c.face_ids]
        return list(dict.fromkeys(ids))


class PersonSearch:
    """`threshold_for(frames)`: the cosine a probe of that many fused frames must reach against this
    person's template (fixed when the search is made, before the erasure changes the gallery)."""

    def __init__(self, client: redis.Redis, template: np.ndarray, model: str,
                 threshold_for: Callable[[int], float], clusters: Clusters | None) -> None:
        self.r, self.template, self.model = client, unit(np.asarray(template, np.float32)), model
        self.threshold_for, self.clusters = threshold_for, clusters

    def find(self) -> PersonMatches:
        threshold = self.threshold_for(1)
        matches = PersonMatches(threshold)
        candidates = History(self.r).all_above(self.template, self.model, threshold - MARGIN)
        for face_id, approximate in sorted(candidates.items(), key=lambda c: -c[1]):
            match = self._face(face_id, approximate)
            if match is not None and match.similarity >= threshold:
                matches.faces.append(match)
        if self.clusters is not None:
            floor = min(self.threshold_for(n) for n in (1, 2, 3)) - MARGIN  # the calibration counts up to 3
            for cluster_id, size, similarity in self.clusters.above(self.model, self.template, floor):
                needed = self.threshold_for(size)
                if similarity >= needed:
                    matches.clusters.append(ClusterMatch(cluster_id, size, similarity, needed,
                                                         self.clusters.all_members(cluster_id)))
        return matches

    def _face(self, face_id: str, approximate: float) -> FaceMatch | None:
        """The face, re-scored exactly, if it is stored and named as nobody (a face named as someone
        else was decided to be them; one named as this person is erased as a sighting)."""
        fields = self.r.hmget(face_key(face_id), "camera_id", "captured_at_ms", "status", "identity_id", "edge_id",
                              "base_layer")
        camera, ts, status, identity_id, edge_id, base_layer = fields
        if not camera or identity_id:
            return None
        try:
            descriptor, _ = decode_base_layer(base_layer or b"")
            similarity = float(unit(np.asarray(descriptor, np.float32)) @ self.template)
        except (BitstreamError, UnknownProfileError, BaseLayerError):
            similarity = approximate  # indexed, so it was decodable once; the index's score is all there is
        return FaceMatch(face_id, camera.decode(), int(ts or 0), (status or b"").decode(), similarity,
                         (edge_id or b"").decode())
