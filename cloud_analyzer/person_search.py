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
float cosine the analyzer decides with. Faces still pending in the ingest stream (pending_faces.py: not
yet decided, so in no index) are decoded as a worker would and scored the same way as one frame; they
are looked at first, so a face decided while the search runs is found in the history index instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import redis

from cloud_analyzer.clusters import Clusters
from cloud_analyzer.history import History
from cloud_analyzer.pending_faces import pending_face_ids
from cloud_analyzer.recognition import decode_base_layer
from facecodec.bitstream import BitstreamError
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.profiles import UnknownProfileError
from facecodec.openset import unit
from service_common.redis_keys import face_key

PENDING_PAGE = 500  # pending faces' records read per round trip (a base layer is a few hundred bytes)
MARGIN = 0.02  # 8-bit scores are within ~0.01 of the float cosine: candidates this far below are re-scored


@dataclass(frozen=True)
class FaceMatch:
    face_id: str
    camera_id: str
    captured_at_ms: int
    status: str  # pending: still in the ingest stream, not yet decided
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

    def pending_ids(self) -> set[str]:
        """The matched faces still pending in the ingest stream."""
        return {f.face_id for f in self.faces if f.status == "pending"}


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
        found = self._pending(list(pending_face_ids(self.r)))
        candidates = History(self.r).all_above(self.template, self.model, threshold - MARGIN)
        found += [self._face(face_id, approximate) for face_id, approximate in candidates.items()]
        by_id = {m.face_id: m for m in found if m is not None and m.similarity >= threshold}
        matches.faces = sorted(by_id.values(), key=lambda m: -m.similarity)
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

    def _pending(self, face_ids: list[str]) -> list[FaceMatch | None]:
        """Each face, scored as one frame, if it is still stored and pending and its base layer decodes to
        a descriptor of the person's model (one a worker cannot decode is decided `error`: no descriptor).
        Read a page per round trip: the backlog can be long."""
        scored: list[FaceMatch | None] = []
        for start in range(0, len(face_ids), PENDING_PAGE):
            page = face_ids[start : start + PENDING_PAGE]
            pipe = self.r.pipeline(transaction=False)
            for face_id in page:
                pipe.hmget(face_key(face_id), "camera_id", "captured_at_ms", "status", "edge_id", "base_layer")
            scored += [self._pending_one(face_id, *fields) for face_id, fields in zip(page, pipe.execute())]
        return scored

    def _pending_one(self, face_id: str, camera: bytes | None, ts: bytes | None, status: bytes | None,
                     edge_id: bytes | None, base_layer: bytes | None) -> FaceMatch | None:
        if not camera or status != b"pending":  # erased, or decided since: the history index has it now
            return None
        try:
            descriptor, codec = decode_base_layer(base_layer or b"")
        except (BitstreamError, UnknownProfileError, BaseLayerError):
            return None
        if codec.spec.descriptor_model != self.model:  # another descriptor space: no cosine to compare
            return None
        similarity = float(unit(np.asarray(descriptor, np.float32)) @ self.template)
        return FaceMatch(face_id, camera.decode(), int(ts or 0), "pending", similarity, (edge_id or b"").decode())
