"""Face history search: every face the cloud has decided, recognised or not, searchable by similarity.

Faces are indexed per descriptor model, UTC day and camera (`fc:history:{model}:{yyyymmdd}:{camera}`,
written by `Store.record_result`), with their capture time as an attribute. A search fans out over the
sets of the days its time range covers and of its cameras (all that day's cameras when it names none),
each a single VSIM with a FILTER on time, in one pipeline, and merges the hits.
Scores come from 8-bit quantised vectors: cosine = 2 * VSIM score - 1, within about 0.01 of the
float cosine. Retention drops whole days (cloud_analyzer/retention.py, from the index `HISTORY_DAYS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import redis

from service_common.redis_keys import FACE_INDEXES, face_key, history_cameras_key, history_key

DAY_MS = 86_400_000
MAX_DAYS = 400  # partitions one query may touch (retention keeps far fewer)


@dataclass(frozen=True)
class HistoryHit:
    face_id: str
    camera_id: str
    captured_at_ms: int
    similarity: float
    status: str
    identity_id: str | None
    identity_name: str | None
    track_id: str | None


def days(since_ms: int, until_ms: int) -> list[int]:
    """A timestamp inside each UTC day covering [since_ms, until_ms], newest first."""
    first, last = since_ms // DAY_MS, until_ms // DAY_MS
    if last - first >= MAX_DAYS:
        raise ValueError(f"a history search spans at most {MAX_DAYS} days")
    return [day * DAY_MS for day in range(last, first - 1, -1)]


class History:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def search(self, probe: np.ndarray, model: str, since_ms: int, until_ms: int, cameras: list[str] | None = None,
               min_similarity: float = -1.0, limit: int = 50) -> tuple[list[HistoryHit], int]:
        """Faces most similar to `probe`, best first, and how many day partitions were searched."""
        blob = np.asarray(probe, "<f4").tobytes()
        in_range = days(since_ms, until_ms)
        if cameras:
            keys = [history_key(model, day, camera) for day in in_range for camera in cameras]
        else:
            pipe = self.r.pipeline(transaction=False)
            for day in in_range:
                pipe.smembers(history_cameras_key(model, day))
            keys = [history_key(model, day, c.decode()) for day, seen in zip(in_range, pipe.execute())
                    for c in sorted(seen)]
        expression = f".ts >= {since_ms} and .ts <= {until_ms}"
        pipe = self.r.pipeline(transaction=False)
        for key in keys:
            pipe.execute_command("VSIM", key, "FP32", blob, "WITHSCORES", "COUNT", limit, "FILTER", expression)
        replies = pipe.execute()
        scored = [(2 * float(score) - 1, face_id.decode()) for reply in replies for face_id, score in
                  (reply or {}).items()]
        scored = sorted((s for s in scored if s[0] >= min_similarity), reverse=True)[:limit]
        pipe = self.r.pipeline(transaction=False)
        for _, face_id in scored:
            pipe.hmget(face_key(face_id), "camera_id", "captured_at_ms", "status", "identity_id", "identity_name",
                       "track_id")
        hits = []
        for (similarity, face_id), fields in zip(scored, pipe.execute()):
            camera, ts, status, identity_id, name, track = ((v or b"").decode() for v in fields)
            if not camera:  # erased between the two reads
                continue
            hits.append(HistoryHit(face_id, camera, int(ts), round(similarity, 4), status, identity_id or None,
                                   name or None, track or None))
        return hits, len(in_range)

    def all_above(self, probe: np.ndarray, model: str, min_similarity: float) -> dict[str, float]:
        """Every indexed face of `model` whose 8-bit score to `probe` reaches `min_similarity`, over every
        day that holds a stored face: face_id -> cosine. Exhaustive (TRUTH: a linear scan, not the HNSW
        graph, which may miss a neighbour; EPSILON keeps the reply to the faces above the floor), for
        erasure, where completeness matters more than speed."""
        pipe = self.r.pipeline(transaction=False)  # the oldest and newest stored face, over the face shards
        for index in FACE_INDEXES:
            pipe.zrange(index, 0, 0, withscores=True)
            pipe.zrange(index, -1, -1, withscores=True)
        ends = [int(rows[0][1]) for rows in pipe.execute() if rows]
        if not ends:
            return {}
        blob = np.asarray(probe, "<f4").tobytes()
        epsilon = min(max(1 - (min_similarity + 1) / 2, 0.0), 1.0)  # VSIM score = (cosine + 1) / 2
        found: dict[str, float] = {}
        first, last = min(ends) // DAY_MS, max(ends) // DAY_MS
        for start in range(first, last + 1, MAX_DAYS):
            in_range = [day * DAY_MS for day in range(start, min(start + MAX_DAYS, last + 1))]
            pipe = self.r.pipeline(transaction=False)
            for day in in_range:
                pipe.smembers(history_cameras_key(model, day))
            keys = [history_key(model, day, c.decode()) for day, seen in zip(in_range, pipe.execute())
                    for c in sorted(seen)]
            pipe = self.r.pipeline(transaction=False)
            for key in keys:
                pipe.execute_command("VCARD", key)
            cards = pipe.execute()
            pipe = self.r.pipeline(transaction=False)
            for key, card in zip(keys, cards):
                pipe.execute_command("VSIM", key, "FP32", blob, "WITHSCORES", "COUNT", max(int(card or 0), 1),
                                     "EPSILON", epsilon, "TRUTH")
            for reply in pipe.execute():
                for face_id, score in (reply or {}).items():
                    if 2 * float(score) - 1 >= min_similarity:
                        found[face_id.decode()] = 2 * float(score) - 1
        return found
