"""Read-only view of the analyzer's face records (`face_key`, service_common/redis_keys.py).

The reconstructor never writes faces; it reads a face's base layer and which edge holds the rest
(the edge's address comes from RECONSTRUCTOR_EDGES, never from the record).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import redis

from service_common.key_layout import check_layout
from service_common.redis_client import connect
from service_common.redis_keys import FACE_VIEW_FIELDS, KEY_LAYOUT, LAYOUT, face_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceRef:
    face_id: str
    base_layer: bytes
    edge_id: str
    enhancement_levels: int


class FaceIndex:
    def __init__(self, url: str, timeout_s: float, password_file: Path | None = None,
                 read_from_replicas: bool = False) -> None:
        self.r = connect(url, password_file, timeout_s, read_from_replicas)

    def check_layout(self) -> None:
        """Refuse (LayoutMismatch) a Redis whose faces were written with other shard counts (the analyzer
        records them): this process would look every face up under another shard's name."""
        try:
            stored = self.r.get(KEY_LAYOUT)
        except (redis.ConnectionError, redis.TimeoutError) as exc:  # the analyzer checks it too, and waits
            log.warning("redis: the key layout could not be read (%s); not checked", exc)
            return
        check_layout(stored, LAYOUT, "reconstructor")

    def get(self, face_id: str) -> FaceRef | None:
        base, edge_id, levels = self.r.hmget(face_key(face_id), *FACE_VIEW_FIELDS)
        if base is None:
            return None
        return FaceRef(face_id, base, (edge_id or b"").decode(), int(levels or 0))
