"""Corrections: a person says a face's decision was wrong, and later decisions change accordingly.

- `reject`: the face is not this identity (its current one, or the one named). If it was named as that
  identity it becomes unknown. Its decoded base-layer descriptor becomes a *negative example* of the
  identity (`negatives_key`, at most MAX_NEGATIVES, the oldest dropped).
- `reassign`: the face is another identity, or nobody known (identity_id null). The identity it was
  named as, if any, gets it as a negative example too (it was not that person). With `add_as_template`
  its descriptor also becomes a template of the new identity.

No model learns from a correction: the recogniser and the codec stay as they are. Corrections change
decisions only through what the decision reads from Redis: negatives (cloud_analyzer/decision.py vetoes
a match to an identity when the probe is at least as close to one of its negatives as to its template),
templates, and per-identity threshold overrides (`threshold_override` on the identity's hash).

Every correction is kept on its face (`corrections_key`, who and when), written to the events stream as
`face.corrected`, and goes with the face when erasure or retention forgets it (`forget_faces`).
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import redis

from cloud_analyzer.identities import LEGACY_DESCRIPTOR_MODEL
from cloud_analyzer.recognition import decode_base_layer
from facecodec.bitstream import BitstreamError
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.profiles import UnknownProfileError
from service_common.redis_keys import (
    EVENTS_MAXLEN,
    EVENTS_STREAM,
    corrections_key,
    face_key,
    identity_key,
    identity_sightings_key,
    negatives_key,
)
from service_common.request_id import stream_fields

MAX_NEGATIVES = 32  # per identity: bounds the memory and the cost of one decision (32 dot products)
MAX_CORRECTIONS = 50  # per face; never trimmed: erasure finds the negatives made of a face through them
CORRECTABLE = ("recognised", "unknown", "low_quality")  # decided faces; pending and failed ones are not
# A per-identity threshold override: a cosine in this range, applied only where it is stricter than the
# gallery's operating threshold (docs/corrections.md says why).
MIN_OVERRIDE, MAX_OVERRIDE = 0.2, 0.99
_STAMP = struct.Struct(">Q")


class CorrectionError(Exception):
    """A correction that cannot be made; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Correction:
    action: str  # reject | reassign
    from_identity_id: str | None  # the identity the face was said not to be (negative added to it)
    to_identity_id: str | None  # the identity it is named as afterwards (None: unknown)
    template_added: bool
    negative_added: bool
    key_id: str
    at_ms: int


def encode_negative(descriptor: np.ndarray, at_ms: int) -> bytes:
    return _STAMP.pack(at_ms) + np.asarray(descriptor, "<f4").tobytes()


def decode_negative(blob: bytes) -> tuple[int, np.ndarray]:
    return _STAMP.unpack_from(blob)[0], np.frombuffer(blob, "<f4", offset=_STAMP.size)


def closest_negative(blobs: Iterable[bytes], probe: np.ndarray) -> float | None:
    """The highest cosine between the probe and one of these negatives (None: none of its dimension)."""
    probe = np.asarray(probe, "<f4")
    vectors = [v for _, v in map(decode_negative, blobs) if v.shape == probe.shape]
    return float(np.max(np.stack(vectors) @ probe)) if vectors else None


class NegativeVeto:
    """For decisions made outside `OpenSetPolicy.decide` (a backfill's history search): whether a stored
    face is at least as close to one of the identity's negatives as to its template (`similarity`)."""

    def __init__(self, client: redis.Redis, identity_id: str) -> None:
        self.r, self.blobs = client, list(client.hvals(negatives_key(identity_id)))

    def __call__(self, face_id: str, similarity: float) -> bool:
        if not self.blobs:
            return False
        blob = self.r.hget(face_key(face_id), "base_layer")
        if blob is None:
            return True  # erased meanwhile: nothing to name
        try:
            descriptor, _ = decode_base_layer(blob)
        except (BitstreamError, UnknownProfileError, BaseLayerError):
            return True
        negative = closest_negative(self.blobs, descriptor)
        return negative is not None and negative >= similarity


class Corrections:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    def correct(self, face_id: str, action: str, identity_id: str | None, add_as_template: bool, key_id: str,
                descriptor: np.ndarray, descriptor_model: str) -> Correction:
        """Apply one correction (the face's decision, its sighting indexes, the negative, the correction
        record, the event). `descriptor`: the face's decoded base layer, of `descriptor_model`. The template,
        when asked for, is the caller's to add (IdentityStore.add_templates) after this.

        In steps, each in one slot: the face's record and its correction record (one transaction, WATCHing
        the face: a concurrent change or erasure means look again); then the negative, only while its
        identity exists; then the identities' sightings and the event, taken back if an erasure took the
        face, or the identity it now names, in between (neither may come back)."""
        fkey = face_key(face_id)
        while True:
            with self.r.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(fkey, corrections_key(face_id))
                    stored = pipe.hmget(fkey, "status", "identity_id", "camera_id", "captured_at_ms", "quality_issues")
                    status, current, camera_id, ts, issues = ((v or b"").decode() for v in stored)
                    rejected, named = self._plan(pipe, face_id, status, current, action, identity_id,
                                                 add_as_template, issues)
                    negative = self._negative_fits(self.r, rejected, descriptor_model)
                    if add_as_template and self._model_of(self.r, named) != descriptor_model:
                        raise CorrectionError(409, f"identity {named} was enrolled with another recogniser; "
                                                   "its templates cannot take this face")
                    now = int(time.time() * 1000)
                    name = (self.r.hget(identity_key(named), "name") or b"").decode() if named else ""
                    correction = Correction(action, rejected, named, add_as_template, negative, key_id, now)
                    pipe.multi()
                    pipe.hset(fkey, mapping={
                        "status": "recognised" if named else ("unknown" if status == "recognised" else status),
                        "identity_id": named or "", "identity_name": name,
                        "corrected_action": action, "corrected_at_ms": now, "corrected_by": key_id})
                    pipe.rpush(corrections_key(face_id), json.dumps(asdict(correction)))
                    pipe.execute()
                    break
                except redis.WatchError:  # the face changed under us: look again
                    continue
        if negative and rejected:
            self._add_negative(rejected, face_id, encode_negative(descriptor, now))
        pipe = self.r.pipeline(transaction=False)
        if current and current != named:
            pipe.zrem(identity_sightings_key(current), face_id)
        if named:
            pipe.zadd(identity_sightings_key(named), {face_id: int(ts)})
        pipe.xadd(EVENTS_STREAM, {
            "type": "face.corrected", "action": action, "face_id": face_id, "camera_id": camera_id,
            "captured_at_ms": int(ts), "decided_at_ms": now,
            "status": "recognised" if named else "unknown", "identity_id": named or "",
            "identity_name": name,
            "previous_identity_id": current, "rejected_identity_id": rejected or "",
            "key_id": key_id, **stream_fields()}, maxlen=EVENTS_MAXLEN, approximate=True)
        *_, event_id = pipe.execute()
        face_gone = not self.r.exists(fkey)
        if named and (face_gone or not self.r.exists(identity_key(named))):
            self.r.zrem(identity_sightings_key(named), face_id)
        if face_gone:
            self.r.xdel(EVENTS_STREAM, event_id)
            if negative and rejected:
                self.r.hdel(negatives_key(rejected), face_id)
        return correction

    def _add_negative(self, identity_id: str, face_id: str, entry: bytes) -> None:
        """The face as a negative of the identity, the oldest dropped beyond MAX_NEGATIVES, only while the
        identity exists (one slot: its gallery shard's; WATCHed, so a concurrent change looks again)."""
        key, negatives = identity_key(identity_id), negatives_key(identity_id)
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, negatives)
                    if not pipe.exists(key):
                        pipe.unwatch()
                        return
                    evict = self._evictions(pipe, identity_id)
                    pipe.multi()
                    pipe.hset(negatives, face_id, entry)
                    if evict:
                        pipe.hdel(negatives, *evict)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def list(self, face_id: str) -> list[Correction]:
        return [Correction(**json.loads(raw)) for raw in self.r.lrange(corrections_key(face_id), 0, -1)]

    def negatives(self, identity_id: str) -> list[bytes]:
        return list(self.r.hvals(negatives_key(identity_id)))

    def forget_faces(self, face_ids: Iterable[str]) -> None:
        """Erasure and retention: these faces' corrections, and the negatives made of them, go."""
        for face_id in face_ids:
            rejected = {c.from_identity_id for c in self.list(face_id) if c.from_identity_id}
            pipe = self.r.pipeline(transaction=False)  # each identity's negatives in its own slot
            for identity_id in rejected:
                pipe.hdel(negatives_key(identity_id), face_id)
            pipe.delete(corrections_key(face_id))
            pipe.execute()

    def forget_identity(self, identity_id: str, named_faces: Iterable[str] = ()) -> None:
        """Identity erasure: its negatives, and the corrections naming it on faces that stay (those it has
        as negatives, and `named_faces`: its sightings). LREM and DEL only: they also run when Redis is full."""
        faces = {f.decode() for f in self.r.hkeys(negatives_key(identity_id))} | set(named_faces)
        for face_id in faces:
            key = corrections_key(face_id)
            pipe = self.r.pipeline(transaction=True)
            for raw in self.r.lrange(key, 0, -1):
                named = json.loads(raw)
                if identity_id in (named["from_identity_id"], named["to_identity_id"]):
                    pipe.lrem(key, 0, raw)
            pipe.execute()
        self.r.delete(negatives_key(identity_id))

    # --- internals ---------------------------------------------------------------------------------
    def _plan(self, pipe: Any, face_id: str, status: str, current: str, action: str, identity_id: str | None,
              add_as_template: bool, issues: str) -> tuple[str | None, str | None]:
        """(identity the face is not, identity it is named as afterwards), or the reason it cannot be."""
        if not status:
            raise CorrectionError(404, f"face {face_id} not found")
        if status not in CORRECTABLE:
            raise CorrectionError(409, f"face {face_id} is {status}: only decided faces can be corrected")
        if pipe.llen(corrections_key(face_id)) >= MAX_CORRECTIONS:  # kept whole: erasure reads them all
            raise CorrectionError(409, f"face {face_id} was corrected {MAX_CORRECTIONS} times already")
        if identity_id and not self.r.exists(identity_key(identity_id)):
            raise CorrectionError(404, f"identity {identity_id} not found")
        if add_as_template and (action != "reassign" or not identity_id):
            raise CorrectionError(422, "add_as_template needs a reassignment to an identity")
        if add_as_template and issues:
            raise CorrectionError(422, f"face {face_id} is not good enough to be a template ({issues})")
        if action == "reject":
            rejected = identity_id or current
            if not rejected:
                raise CorrectionError(422, f"face {face_id} is not named: say which identity it is not")
            return rejected, (None if current == rejected else current or None)
        if identity_id == (current or None):
            raise CorrectionError(409, f"face {face_id} is already named as {current or 'nobody'}")
        return current or None, identity_id

    def _negative_fits(self, pipe: Any, identity_id: str | None, model: str) -> bool:
        """Whether the face can be a negative of this identity: only one of its descriptor model is ever
        compared (an identity erased meanwhile takes none)."""
        return bool(identity_id) and self._model_of(pipe, identity_id) == model

    @staticmethod
    def _model_of(pipe: Any, identity_id: str | None) -> str | None:
        if not identity_id:
            return None
        meta = pipe.hmget(identity_key(identity_id), "identity_id", "descriptor_model")
        if meta[0] is None:
            return None
        return (meta[1] or LEGACY_DESCRIPTOR_MODEL.encode()).decode()

    @staticmethod
    def _evictions(pipe: Any, identity_id: str | None) -> list[bytes]:
        """The oldest negatives beyond MAX_NEGATIVES - 1, so the new one keeps the count bounded."""
        held = pipe.hgetall(negatives_key(identity_id))
        by_age = sorted(held, key=lambda f: decode_negative(held[f])[0])
        return by_age[: max(0, len(by_age) - (MAX_NEGATIVES - 1))]
