"""The analyzer's faces and sightings in Redis: ingest, decisions, tracks, listings. Identities and the
gallery's index are `IdentityStore`'s (cloud_analyzer/identities.py), which `Store` extends so that one
client handle serves both. Key names live in service_common/redis_keys.py; the whole key table is
docs/redis-keys.md."""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis

from cloud_analyzer.events.schema import decision_fields
from cloud_analyzer.fusion import cached_value
from cloud_analyzer.identities import IdentityStore
from cloud_analyzer.replicated_ingest import ReplicatedScript
from service_common.pagination import merged_positions
from service_common.redis_client import connect
from service_common.redis_keys import (
    CAMERAS,
    EVENTS_MAXLEN,
    EVENTS_STREAM,
    GROUP,
    HISTORY_DAYS,
    INGEST_STREAMS,
    SIGHTINGS_SHARDS,
    camera_sightings_key,
    face_key,
    face_shard,
    faces_key,
    fusion_descriptor_key,
    history_cameras_key,
    history_days_member,
    history_key,
    identity_sightings_key,
    ingest_stream_of,
    negatives_key,
    sightings_key,
    track_erased_key,
    track_info_key,
    track_key,
)
from service_common.request_id import stream_fields
from service_common.times import rfc3339_ms

# Atomic: a face is stored and queued exactly once, however often the edge re-sends it. A face_id
# already stored is a duplicate only if its content (base layer, camera, capture time) is the same;
# otherwise it is a conflict and the stored face stays as it was.
# ARGV: face_id, base_layer, camera_id, captured_at_ms, then the hash's field/value pairs.
# KEYS: the track's summary, its erasure mark. ARGV: ttl_s (0: none), then the field/value pairs.
_CLOSE_TRACK = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if tonumber(ARGV[1]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return 1
"""

_INGEST = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  local stored = redis.call('HMGET', KEYS[1], 'base_layer', 'camera_id', 'captured_at_ms')
  if stored[1] == ARGV[2] and stored[2] == ARGV[3] and stored[3] == ARGV[4] then return 0 end
  return 2
end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if ARGV[5] ~= '' then
  redis.call('XADD', KEYS[2], '*', 'face_id', ARGV[1], 'at', ARGV[6], 'request_id', ARGV[5])
else
  redis.call('XADD', KEYS[2], '*', 'face_id', ARGV[1], 'at', ARGV[6])
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
"""


# The face's own step of a decision, in the face's slot: KEYS face, its shard's sighting index, its fusion
# descriptor. ARGV: face_id, capture time, index it (1/0), fusion ttl ms (0: none), fusion value, then the
# field/value pairs. Nothing (0) when the face is gone: an erasure came first.
_DECIDE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
if ARGV[3] == '1' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1]) end
if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[3], ARGV[5], 'PX', ARGV[4]) end
return 1
"""

# A backfill's step on the face: KEYS face; ARGV field/value pairs. Only while the face is still unknown.
_RELABEL = """
if redis.call('HGET', KEYS[1], 'status') ~= 'unknown' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


class IngestResult(enum.Enum):
    DUPLICATE = 0  # stored earlier with the same content: nothing changed
    CREATED = 1
    CONFLICT = 2  # stored earlier with different content: the new record was dropped



@dataclass(frozen=True)
class Outcome:
    """What recognition concluded about one face."""

    status: str  # recognised | unknown | low_quality | error
    identity_id: str | None = None
    identity_name: str | None = None
    similarity: float | None = None  # best candidate's cosine, named or not
    threshold: float | None = None  # the cosine a candidate had to reach
    fpir: float | None = None  # the false positive identification rate the decision was made at
    gallery_size: int | None = None
    fused_faces: int = 1  # faces of this person (this one included) the decision was made from
    error: str = ""
    threshold_override: bool = False  # the threshold was the best candidate's own (corrections.py)
    negative_similarity: float | None = None  # highest cosine to the best candidate's negatives
    rejected_by_negative: bool = False  # not named: closer to a face people said is not that identity
    cluster_id: str | None = None  # unknown faces: the anonymous cluster, for the event (clusters.py stores it)
    looks_child: bool | None = None  # the child-look probe flagged it (minors.py); None: not assessed
    child_probability: float | None = None
    child_withheld: bool = False  # a name was withheld because the face looks like a child's
    fpir_upper: float | None = None  # upper end of the FPIR's 95% interval (facecodec.openset)
    calibration_caveats: tuple[str, ...] = ()  # where the gallery or probe is outside what calibration covered


@dataclass(frozen=True)
class Sighting:
    face_id: str
    camera_id: str
    captured_at_ms: int
    identity_id: str | None
    identity_name: str | None
    similarity: float | None
    status: str
    bbox: list[float]
    threshold: float | None = None
    fpir: float | None = None  # stored as the face's `decision_fpir`
    fpir_upper: float | None = None  # upper end of its 95% interval (stored as `decision_fpir_upper`)
    calibration_caveats: list[str] | None = None  # gallery_beyond_calibration, single_photo_enrolment, low_quality
    calibrated_on: str | None = None  # the faces the decision's calibration came from (the base layer's)
    gallery_size: int | None = None
    fused_faces: int | None = None
    quality_issues: list[str] | None = None
    quality_score: float | None = None  # the edge's 0-1 score (size, sharpness, head turn); older edges: none
    face_width_px: float | None = None
    track_id: str | None = None  # the edge's track: one person in view of one camera
    decided_at_ms: int | None = None  # when the analyzer decided (frame-to-sighting latency)
    cluster_id: str | None = None  # unknown faces: their anonymous cluster (cloud_analyzer/clusters.py)
    # --- corrections (cloud_analyzer/corrections.py, docs/corrections.md) ---
    threshold_override: bool = False  # `threshold` was the identity's own override, not the gallery's
    rejected_by_negative: bool = False  # cleared the threshold, but closer to a face people said is not them
    negative_similarity: float | None = None
    looks_child: bool | None = None  # the child-look probe flagged it (minors.py); None: not assessed
    child_probability: float | None = None
    child_withheld: bool = False
    corrected_action: str | None = None  # the latest correction: reject | reassign
    corrected_at: str | None = None  # RFC 3339 UTC
    corrected_by: str | None = None  # the API key id that made it
    captured_at: str | None = None  # captured_at_ms as RFC 3339 (service_common/times.py)
    decided_at: str | None = None


class Store(IdentityStore):
    def __init__(self, client: redis.Redis, ingest_wait_replicas: int = 0, ingest_wait_timeout_ms: int = 500) -> None:
        """ingest_wait_replicas: on a cluster, a face is stored once that many replicas of its primary have
        it too (cloud_analyzer/replicated_ingest.py)."""
        self.r = client
        self._ingest = ReplicatedScript(client, self.r.register_script(_INGEST), ingest_wait_replicas,
                                        ingest_wait_timeout_ms)
        self._close_track = self.r.register_script(_CLOSE_TRACK)
        self._decide = self.r.register_script(_DECIDE)
        self._relabel = self.r.register_script(_RELABEL)

    @classmethod
    def from_url(cls, url: str, timeout_s: float, password_file: Path | None = None,
                 read_from_replicas: bool = False, **options: int) -> Store:
        """options: Store's own (ingest_wait_replicas, ingest_wait_timeout_ms)."""
        return cls(connect(url, password_file, timeout_s, read_from_replicas, health_check_interval=30), **options)

    def ensure_group(self) -> None:
        """The consumer group on every face shard's ingest stream."""
        for stream in INGEST_STREAMS:
            try:
                self.r.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # --- faces -------------------------------------------------------------------------------------
    def ingest(self, face_id: str, fields: dict[str, Any]) -> IngestResult:
        """Store a face and queue it for recognition, unless the face_id is already stored (then
        DUPLICATE or CONFLICT, by content)."""
        flat: list[Any] = [face_id, fields["base_layer"], fields["camera_id"], int(fields["captured_at_ms"]),
                           fields.get("request_id", ""),  # the edge's REST call, on the stream entry too
                           time.time_ns()]  # arrival order across the shards' streams (the worker sorts by it)
        for k, v in {**fields, "face_id": face_id, "status": "pending",
                     "ingested_at_ms": int(time.time() * 1000)}.items():
            flat += [k, v]
        shard = face_shard(face_id)  # the record, its shard's stream and face index: one slot
        return IngestResult(int(self._ingest([face_key(face_id), ingest_stream_of(face_id), faces_key(shard)], flat)))

    def face(self, face_id: str) -> dict[str, Any] | None:
        return _face_fields(self.r.hgetall(face_key(face_id)))

    def faces(self, face_ids: list[str]) -> list[dict[str, Any] | None]:
        """Several faces in one round trip (a worker's batch), None for a missing one."""
        pipe = self.r.pipeline(transaction=False)
        for face_id in face_ids:
            pipe.hgetall(face_key(face_id))
        return [_face_fields(raw) for raw in pipe.execute()]

    def record_result(self, stream_id: bytes, face: dict[str, Any], outcome: Outcome,
                      descriptor: np.ndarray | None = None, model: str = "", fusion_ttl_ms: int = 0) -> None:
        """Recognition outcome, sighting indexes, history index (with the face's decoded `descriptor` of
        `model`), event and ack; only the ack if the face was erased meanwhile (a decision must not bring an
        erased face back). `fusion_ttl_ms`: the descriptor is also kept this long for fusing the camera's
        next faces (cloud_analyzer/fusion.py).

        Three steps, each safe to repeat (a worker dying in between leaves the entry unacked: the next
        one decides again) and each in one slot: (1) the face's record, shard sighting index and fusion
        descriptor, only if the face still exists; (2) the indexes in other slots (camera, identity, track,
        history) and the event; (3) the history day's entry in retention's index, then the ack if the face
        still exists, else step 2 is taken back. An
        erasure deletes the record first (reading what it names, atomically) and the index entries after:
        before (1), nothing is written; between (1) and (3), it or (3) removes what (2) wrote."""
        face_id, camera_id, ts = face["face_id"], face["camera_id"], int(face["captured_at_ms"])
        update = {"status": outcome.status, "identity_id": outcome.identity_id or "",
                  "identity_name": outcome.identity_name or "", "similarity": _num(outcome.similarity),
                  "threshold": _num(outcome.threshold), "decision_fpir": _num(outcome.fpir, "g"),
                  "gallery_size": _num(outcome.gallery_size, "d"), "fused_faces": outcome.fused_faces,
                  "error": outcome.error, "decided_at_ms": int(time.time() * 1000),
                  "threshold_override": int(outcome.threshold_override),
                  "negative_similarity": _num(outcome.negative_similarity),
                  "rejected_by_negative": int(outcome.rejected_by_negative),
                  "looks_child": "" if outcome.looks_child is None else int(outcome.looks_child),
                  "child_probability": _num(outcome.child_probability),
                  "child_withheld": int(outcome.child_withheld),
                  "decision_fpir_upper": _num(outcome.fpir_upper, "g"),
                  "calibration_caveats": ",".join(outcome.calibration_caveats)}
        event = decision_fields(face, outcome.status, outcome.identity_id, outcome.identity_name,
                                outcome.cluster_id, update["similarity"], update["threshold"],
                                update["decision_fpir"], update["decided_at_ms"])
        if face.get("request_id"):  # the edge's REST call that posted the frame (service_common/request_id.py)
            event["request_id"] = face["request_id"]
        history = history_key(model, ts, camera_id) if descriptor is not None and model else None
        if history:
            update["history_key"] = history
        stream = ingest_stream_of(face_id)
        indexed = outcome.status != "error"
        fusion = cached_value(outcome.status, descriptor, model) if fusion_ttl_ms else b""
        pairs = [v for item in update.items() for v in item]
        own = [face_key(face_id), sightings_key(face_shard(face_id)), fusion_descriptor_key(face_id)]
        if not self._decide(keys=own, args=[face_id, ts, int(indexed), fusion_ttl_ms, fusion, *pairs]):
            self.r.xack(stream, GROUP, stream_id)  # erased: nothing to record, the entry is done
            return
        elsewhere = self._index_writes(face, outcome, history, descriptor, model)
        pipe = self.r.pipeline(transaction=False)
        for command in elsewhere:
            pipe.execute_command(*command)
        pipe.xadd(EVENTS_STREAM, event, maxlen=EVENTS_MAXLEN, approximate=True)
        *_, event_id = pipe.execute()
        after = self.r.pipeline(transaction=False)
        if history:
            # The day's entry in retention's index of history days, once step 2's cameras-set SADD is done:
            # retention drops a day from the index when that set is empty (cloud_analyzer/retention.py),
            # and a cluster pipeline keeps no order between nodes, so it is a step of its own.
            after.zadd(HISTORY_DAYS, {history_days_member(model, ts): ts - ts % 86_400_000})
        after.exists(face_key(face_id))
        if not after.execute()[-1]:  # erased between the steps: take back what step 2 wrote
            self._undo(elsewhere, face_id, event_id)
        self.r.xack(stream, GROUP, stream_id)

    @staticmethod
    def _index_writes(face: dict[str, Any], outcome: Outcome, history: str | None, descriptor: np.ndarray | None,
                      model: str) -> list[tuple]:
        """A decision's writes outside its face's slot (each command one key: no slot to share)."""
        face_id, camera_id, ts = face["face_id"], face["camera_id"], int(face["captured_at_ms"])
        writes: list[tuple] = []
        if history and descriptor is not None:
            writes += [("VADD", history, "FP32", np.asarray(descriptor, "<f4").tobytes(), face_id, "Q8",
                        "SETATTR", json.dumps({"ts": ts})), ("SADD", history_cameras_key(model, ts), camera_id)]
        if outcome.status != "error":
            writes.append(("ZADD", camera_sightings_key(camera_id), ts, face_id))
            if outcome.identity_id:
                writes.append(("ZADD", identity_sightings_key(outcome.identity_id), ts, face_id))
            if face.get("track_id"):  # the edge's track: one person's stay in view of one camera
                writes.append(("ZADD", track_key(face["track_id"]), ts, face_id))
            writes.append(("ZADD", CAMERAS, "GT", ts, camera_id))  # GT still adds new cameras
        return writes

    def _undo(self, writes: list[tuple], face_id: str, event_id: bytes) -> None:
        pipe = self.r.pipeline(transaction=False)
        for name, key, *_ in writes:
            if name == "VADD":
                pipe.execute_command("VREM", key, face_id)
            elif name == "ZADD" and key != CAMERAS:  # a shared index: not the face's
                pipe.zrem(key, face_id)
        pipe.xdel(EVENTS_STREAM, event_id)
        pipe.execute()

    def close_track(self, track_id: str, fields: dict[str, Any], ttl_s: float | None) -> bool:
        """The summary of a track the edge closed: first and last seen, faces seen and uplinked. Not
        stored (False) when an erasure took any of the track's faces."""
        pairs = [v for item in fields.items() for v in item]
        return bool(self._close_track(keys=[track_info_key(track_id), track_erased_key(track_id)],
                                      args=[int(ttl_s or 0), *pairs]))

    def track_info(self, track_id: str) -> dict[str, int | str] | None:
        raw = self.r.hgetall(track_info_key(track_id))
        if not raw:
            return None
        out = {k.decode(): v.decode() for k, v in raw.items()}
        return {k: (int(v) if k.endswith(("_ms", "_seen", "_uplinked")) else v) for k, v in out.items()}

    def track_faces(self, track_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """Decided faces of one edge track, oldest first."""
        ids = self.r.zrange(track_key(track_id), 0, limit - 1)
        pipe = self.r.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(face_key(i.decode()))
        faces = [_face_fields(raw) for raw in pipe.execute()]
        return [f for f in faces if f is not None]

    def relabel(self, face_id: str, identity_id: str, name: str, similarity: float) -> bool:
        """Name a past unknown face (a backfill after an enrolment); False if it is not unknown any more, or
        people said it is not this identity (it is one of its negatives: cloud_analyzer/corrections.py). The
        face first (only if still unknown, in its slot), then the identity's sightings and the event, taken
        back if an erasure took the face in between (as a decision's: `record_result`)."""
        key = face_key(face_id)
        if self.r.hexists(negatives_key(identity_id), face_id):
            return False
        camera_id, ts = self.r.hmget(key, "camera_id", "captured_at_ms")
        if ts is None or not self._relabel(keys=[key], args=[
                "status", "recognised", "identity_id", identity_id, "identity_name", name,
                "similarity", _num(similarity), "relabelled_at_ms", int(time.time() * 1000)]):
            return False
        pipe = self.r.pipeline(transaction=False)
        pipe.zadd(identity_sightings_key(identity_id), {face_id: int(ts)})
        pipe.xadd(EVENTS_STREAM, {"type": "face.relabelled", "face_id": face_id,
                                  "camera_id": camera_id.decode(), "captured_at_ms": int(ts),
                                  "status": "recognised", "identity_id": identity_id,
                                  "identity_name": name, "similarity": _num(similarity),
                                  **stream_fields()},
                  maxlen=EVENTS_MAXLEN, approximate=True)
        _, event_id = pipe.execute()
        if not self.r.exists(key):
            self._undo([("ZADD", identity_sightings_key(identity_id))], face_id, event_id)
        return True

    def mark_failed(self, stream_id: bytes, face_id: str, error: str) -> None:
        pipe = self.r.pipeline(transaction=True)  # the face and its shard's stream: one slot
        pipe.hset(face_key(face_id), mapping={"status": "error", "error": error})
        pipe.xack(ingest_stream_of(face_id), GROUP, stream_id)
        pipe.execute()

    # --- sightings ---------------------------------------------------------------------------------
    def sightings(
        self, identity_id: str | None, camera_id: str | None, since_ms: int | None, until_ms: int | None,
        after: tuple[int, str] | None, limit: int,
    ) -> tuple[list[Sighting], tuple[int, str] | None]:
        """Newest first; `after` (capture time, face id) continues after the last sighting of the previous
        page; the second value is that position for the next page, None on the last."""
        if identity_id:
            keys: tuple[str, ...] = (identity_sightings_key(identity_id),)
        elif camera_id:
            keys = (camera_sightings_key(camera_id),)
        else:
            keys = SIGHTINGS_SHARDS  # every face shard's index, merged newest first
        hi: float | str = until_ms if until_ms is not None else "+inf"
        lo: float | str = since_ms if since_ms is not None else "-inf"
        if after is not None:
            hi = after[0] if hi == "+inf" else min(float(hi), after[0])
        results: list[Sighting] = []
        batch = max(limit * 2, 16)
        for _, face_id in merged_positions(self.r, keys, hi, lo, after, batch):
            face = self.face(face_id)
            if face is None or (camera_id and face["camera_id"] != camera_id):
                continue
            results.append(to_sighting(face))
            if len(results) == limit + 1:
                break
        next_cursor = None
        if len(results) > limit:
            results = results[:limit]
            last = results[-1]
            next_cursor = (last.captured_at_ms, last.face_id)
        return results, next_cursor

    def cameras(self) -> list[tuple[str, int, int]]:
        rows = self.r.zrevrange(CAMERAS, 0, -1, withscores=True)
        pipe = self.r.pipeline(transaction=False)
        for cam, _ in rows:
            pipe.zcard(camera_sightings_key(cam.decode()))
        counts = pipe.execute()
        return [(cam.decode(), int(ts), int(n)) for (cam, ts), n in zip(rows, counts)]

    def events(self, after: str, limit: int) -> list[tuple[str, dict[str, str]]]:
        rows = self.r.xrange(EVENTS_STREAM, min=f"({after}" if after != "-" else "-", count=limit)
        return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()}) for i, f in rows]


def _face_fields(raw: dict[bytes, bytes]) -> dict[str, Any] | None:
    """A face hash as str -> str, the base layer left as bytes; None for a missing face."""
    if not raw:
        return None
    return {k.decode(): v if k == b"base_layer" else v.decode() for k, v in raw.items()}


def _num(value: float | int | None, spec: str = ".6f") -> str:
    return "" if value is None else format(value, spec)


def _optional(face: dict[str, Any], key: str, kind: type = float):
    value = face.get(key) or ""
    return kind(value) if value else None


def _caveats(face: dict[str, Any]) -> list[str] | None:
    value = face.get("calibration_caveats")
    return None if value is None else [c for c in value.split(",") if c]


def _calibrated_on(face: dict[str, Any]) -> str | None:
    """The sources of the calibration the face's base layer is decided with; None before a decision."""
    if not face.get("decision_fpir"):
        return None
    try:
        from facecodec.codec.profiles import codec_for

        return codec_for(int(face["model_id"]), int(face["rate_id"])).open_set_calibration.sources or None
    except Exception:  # a retired or unknown codec: the decision stands, its source is no longer known
        return None


def to_sighting(face: dict[str, Any]) -> Sighting:
    sim = face.get("similarity") or ""
    issues = face.get("quality_issues")
    return Sighting(
        face_id=face["face_id"],
        camera_id=face["camera_id"],
        captured_at_ms=int(face["captured_at_ms"]),
        identity_id=face.get("identity_id") or None,
        identity_name=face.get("identity_name") or None,
        similarity=float(sim) if sim else None,
        status=face.get("status", "pending"),
        bbox=json.loads(face.get("bbox", "[]")),
        threshold=_optional(face, "threshold"),
        fpir=_optional(face, "decision_fpir"),
        fpir_upper=_optional(face, "decision_fpir_upper"),
        calibration_caveats=_caveats(face),
        calibrated_on=_calibrated_on(face),
        gallery_size=_optional(face, "gallery_size", int),
        fused_faces=_optional(face, "fused_faces", int),
        quality_issues=None if issues is None else [i for i in issues.split(",") if i],
        quality_score=_optional(face, "quality_score"),
        face_width_px=_optional(face, "face_width_px"),
        track_id=face.get("track_id") or None,
        decided_at_ms=_optional(face, "decided_at_ms", int),
        cluster_id=face.get("cluster_id") or None,  # unknown-face clusters
        threshold_override=face.get("threshold_override") == "1",
        rejected_by_negative=face.get("rejected_by_negative") == "1",
        negative_similarity=_optional(face, "negative_similarity"),
        looks_child=None if not face.get("looks_child") else face["looks_child"] == "1",
        child_probability=_optional(face, "child_probability"),
        child_withheld=face.get("child_withheld") == "1",
        corrected_action=face.get("corrected_action") or None,
        corrected_at=rfc3339_ms(_optional(face, "corrected_at_ms", int)),
        corrected_by=face.get("corrected_by") or None,
        captured_at=rfc3339_ms(int(face["captured_at_ms"])),
        decided_at=rfc3339_ms(_optional(face, "decided_at_ms", int)),
    )


# Capture times a cursor may hold: years 1-9999 in Unix ms (what a datetime can say). Beyond, Redis
# would refuse the score, and a client's typo would look like a storage outage.
MIN_TIME_MS, MAX_TIME_MS = -62_135_596_800_000, 253_402_300_799_999
