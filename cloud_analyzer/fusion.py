"""Fusion: a face is decided together with the same person's faces from its camera a few seconds apart
(several frames of one person decide better than one).

Its cost must not grow with the camera's rate. Every decided face leaves its decoded descriptor behind for a
few fusion windows (`fusion_descriptor_key`, float32: exactly what decoding gives, so a fused decision is
the one decoding again would make), and a face reads at most `CANDIDATES` of its camera's newest neighbours
in the window in one round trip, without decoding any of them. Only a neighbour whose cached descriptor has
expired (decided long before, e.g. an edge uploading a backlog) is fetched and decoded as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import redis

from cloud_analyzer.recognition import decode_base_layer
from facecodec.bitstream import BitstreamError
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.profiles import FaceCodec, UnknownProfileError
from facecodec.openset import MAX_PROBE_FRAMES
from service_common.redis_keys import camera_sightings_key, face_key, fusion_descriptor_key

LINK_FAR = 1e-4  # two faces of one camera seconds apart count as one person above this pair FAR
CANDIDATES = 32  # most recent faces of the camera looked at
FUSABLE = ("recognised", "unknown")
NOT_FUSABLE = b""  # cached for faces fusion skips (low quality, errors): no fetch to find that out again
MIN_TTL_MS = 60_000


def cache_ttl_ms(window_ms: int) -> int:
    """How long a decided face's descriptor stays: faces arrive about in capture order, so a few windows."""
    return max(MIN_TTL_MS, 4 * window_ms)


def cached_value(status: str, descriptor: np.ndarray | None, model: str) -> bytes:
    """What `fusion_descriptor_key` holds: `model NUL float32 descriptor`, or NOT_FUSABLE."""
    if status not in FUSABLE or descriptor is None or not model:
        return NOT_FUSABLE
    return model.encode() + b"\0" + np.asarray(descriptor, "<f4").tobytes()


class Fusion:
    def __init__(self, client: redis.Redis, window_s: float) -> None:
        self.r = client
        self.window_ms = int(window_s * 1000)

    @property
    def ttl_ms(self) -> int:
        return cache_ttl_ms(self.window_ms) if self.window_ms else 0

    def same_person_nearby(self, face: dict[str, Any], descriptor: np.ndarray, codec: FaceCodec) -> list[np.ndarray]:
        """Descriptors of this camera's other faces within the fusion window that are, beyond reasonable
        doubt (pair FAR 1e-4), the same person, most similar first, at most MAX_PROBE_FRAMES - 1."""
        if not self.window_ms:
            return []
        ts = int(face["captured_at_ms"])
        model = codec.spec.descriptor_model
        ids = [i.decode() for i in self.r.zrevrangebyscore(
            camera_sightings_key(face["camera_id"]), ts + self.window_ms, ts - self.window_ms,
            start=0, num=CANDIDATES)]
        ids = [i for i in ids if i != face["face_id"]]
        if not ids:
            return []
        neighbours = [d for d in (self._neighbours(ids, model)) if d is not None]
        if not neighbours:
            return []
        stacked = np.stack(neighbours)
        # einsum, not @: a BLAS call per face spins its thread pool (ms on a busy 2-core machine) for 32 dot products
        similarities = np.einsum("ij,j->i", stacked, np.asarray(descriptor, np.float32))
        link = codec.open_set_calibration.tail(1, 1).threshold_at(LINK_FAR)
        linked = [(float(s), d) for s, d in zip(similarities, stacked) if float(s) >= link]
        linked.sort(key=lambda s: -s[0])
        return [d for _, d in linked[: MAX_PROBE_FRAMES - 1]]

    def _neighbours(self, ids: list[str], model: str) -> list[np.ndarray | None]:
        """Each face's descriptor if it is fusable and of `model`, else None: from the cache, else decoded."""
        pipe = self.r.pipeline(transaction=False)
        for i in ids:
            pipe.get(fusion_descriptor_key(i))
        cached = pipe.execute()
        missing = [i for i, c in zip(ids, cached) if c is None]
        decoded = dict(zip(missing, self._decode(missing, model))) if missing else {}
        out: list[np.ndarray | None] = []
        for i, c in zip(ids, cached):
            if c is None:
                out.append(decoded[i])
            elif c != NOT_FUSABLE and c.split(b"\0", 1)[0] == model.encode():
                out.append(np.frombuffer(c.split(b"\0", 1)[1], "<f4"))
            else:
                out.append(None)
        return out

    def _decode(self, ids: list[str], model: str) -> list[np.ndarray | None]:
        pipe = self.r.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(face_key(i), "status", "base_layer")
        out: list[np.ndarray | None] = []
        for status, blob in pipe.execute():
            if status is None or status.decode() not in FUSABLE or not blob:
                out.append(None)
                continue
            try:
                d, codec = decode_base_layer(blob)
            except (BitstreamError, UnknownProfileError, BaseLayerError):
                out.append(None)
                continue
            out.append(d if codec.spec.descriptor_model == model else None)
        return out
