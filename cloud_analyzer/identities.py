"""Identities and the gallery's index in Redis: enrolment, templates added and removed, renames,
listings, the one-time moves of old identities (into the vector sets; template ids and the name index).
Every change writes the identity, its templates, its vector-set element, the enrolment counts and the
gallery version in one transaction, so every replica's next search sees it (cloud_analyzer/gallery.py
searches; erasure removes).

Templates: `templates_key` holds the vectors, `template_info_key` what each one is (its id, where it came
from, its quality, when it was added), in the same order; both are rewritten together under WATCH.
Identities stored before templates had ids get them once, at start (`migrate`) or on the first read.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import redis

from facecodec.openset import enrol_key, identity_template
from service_common.redis_keys import (
    GALLERY_SCHEMA,
    GALLERY_VERSION,
    IDENTITIES,
    IDENTITY_SCHEMA,
    enrol_counts_key,
    gallery_key,
    identity_key,
    identity_name_key,
    mean_key,
    template_info_key,
    templates_key,
)

# Identities enrolled before templates recorded their model were all made with this one (a fixed
# historical value, deliberately not the current default model).
LEGACY_DESCRIPTOR_MODEL = "faceplugin-fr_feature-512"


@dataclass(frozen=True)
class TemplateInfo:
    """What one template is. `source`: `upload` (an image or a base layer sent to the API), `face` (a
    stored sighting the user confirmed: `face_id`), `cluster` (a promoted or merged unknown cluster's
    face: `face_id`), `legacy` (stored before templates had ids; nothing else is known of it)."""

    template_id: str
    source: str
    added_at_ms: int
    face_id: str | None = None
    quality: float | None = None  # the face's 0-1 quality score (facecodec.frontend.quality), if known

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes) -> TemplateInfo:
        return cls(**json.loads(raw))

    @classmethod
    def new(cls, source: str, face_id: str | None = None, quality: float | None = None) -> TemplateInfo:
        return cls(uuid.uuid4().hex, source, int(time.time() * 1000), face_id, quality)


def _legacy_infos(count: int, added_at_ms: int) -> list[TemplateInfo]:
    return [TemplateInfo(uuid.uuid4().hex, "legacy", added_at_ms) for _ in range(count)]


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any] | None:
    return {k.decode(): v.decode() for k, v in raw.items()} if raw else None


class IdentityStore:
    """Identity records and templates; `r` is the Redis client (Store sets it)."""

    r: redis.Redis

    def add_identity(self, identity_id: str, name: str, templates: np.ndarray, descriptor_model: str,
                     infos: list[TemplateInfo] | None = None, metadata: dict | None = None) -> None:
        now = int(time.time() * 1000)
        infos = infos or [TemplateInfo.new("upload") for _ in templates]
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(identity_key(identity_id), mapping={"identity_id": identity_id, "name": name,
                                                      "created_at_ms": now, "templates": len(templates),
                                                      "descriptor_model": descriptor_model,
                                                      "metadata": json.dumps(metadata or {})})
        pipe.rpush(templates_key(identity_id), *[t.astype("<f4").tobytes() for t in templates])
        pipe.rpush(template_info_key(identity_id), *[i.to_json() for i in infos])
        pipe.sadd(identity_name_key(name), identity_id)
        pipe.zadd(IDENTITIES, {identity_id: now})
        _index(pipe, identity_id, descriptor_model, templates, None)
        pipe.incr(GALLERY_VERSION)
        pipe.execute()

    def identity(self, identity_id: str) -> dict[str, Any] | None:
        return _decode(self.r.hgetall(identity_key(identity_id)))

    def identities(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of identities, oldest first; limit -1: all from offset."""
        end = -1 if limit < 0 else offset + limit - 1
        ids = [i.decode() for i in self.r.zrange(IDENTITIES, offset, end)]
        return self.rows(ids), int(self.r.zcard(IDENTITIES))

    def identities_after(self, after: tuple[int, str] | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` identities enrolled after position `after` (created_at_ms, identity_id), oldest
        first, and whether more follow."""
        lo, ids, offset = (after[0] if after else "-inf"), [], 0
        while len(ids) <= limit:
            batch = self.r.zrangebyscore(IDENTITIES, lo, "+inf", start=offset, num=limit + 16, withscores=True)
            if not batch:
                break
            offset += len(batch)
            for member, score in batch:
                position = (int(score), member.decode())
                if after is None or position > after:  # equal times: by id, as Redis orders them
                    ids.append(position[1])
        rows = self.rows(ids[:limit])
        return rows, len(ids) > limit

    def ids_by_name(self, name: str) -> list[str]:
        return sorted(i.decode() for i in self.r.smembers(identity_name_key(name)))

    def rows(self, ids: list[str]) -> list[dict[str, Any]]:
        pipe = self.r.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(identity_key(i))
        return [row for row in (_decode(raw) for raw in pipe.execute()) if row]

    def all_identities(self) -> list[dict[str, Any]]:
        rows, _ = self.identities(0, -1)
        return rows

    def update_identity(self, identity_id: str, name: str | None, metadata: dict | None) -> bool:
        """Rename and/or replace the metadata; False if the identity is gone."""
        key = identity_key(identity_id)
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    old = pipe.hget(key, "name")
                    if old is None:
                        return False
                    pipe.multi()
                    if name is not None and name != old.decode():
                        pipe.srem(identity_name_key(old.decode()), identity_id)
                        pipe.sadd(identity_name_key(name), identity_id)
                        pipe.hset(key, "name", name)
                        pipe.incr(GALLERY_VERSION)  # searches answer with the name
                    if metadata is not None:
                        pipe.hset(key, "metadata", json.dumps(metadata))
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    def add_templates(self, identity_id: str, templates: np.ndarray, descriptor_model: str, keep: int,
                      infos: list[TemplateInfo] | None = None) -> bool:
        """Append templates (the newest `keep` stay), or replace them all when the identity's were made
        by another descriptor model. False if the identity is gone."""
        infos = infos or [TemplateInfo.new("upload") for _ in templates]

        def change(model: str, kept: list[tuple[TemplateInfo, np.ndarray]]):
            same_model = model == descriptor_model
            return [*(kept if same_model else []), *zip(infos, templates)][-keep:], descriptor_model

        return self._rewrite(identity_id, change) is not None

    def remove_template(self, identity_id: str, template_id: str) -> str:
        """Remove one template: `removed`, `no_identity`, `no_template`, or `last` (an identity keeps at
        least one template; delete the identity instead)."""
        outcome = "removed"

        def change(model: str, kept: list[tuple[TemplateInfo, np.ndarray]]):
            nonlocal outcome
            rest = [(i, t) for i, t in kept if i.template_id != template_id]
            if len(rest) == len(kept):
                outcome = "no_template"
                return None
            if not rest:
                outcome = "last"
                return None
            return rest, model

        if self._rewrite(identity_id, change) is None and outcome == "removed":
            return "no_identity"
        return outcome

    def templates(self, identity_id: str) -> tuple[str, list[tuple[TemplateInfo, np.ndarray]]] | None:
        """(descriptor model, [(info, vector)]) in the order added; None if there is no such identity.
        Gives legacy templates their ids first, if they have none yet."""
        key, tmpl, info = identity_key(identity_id), templates_key(identity_id), template_info_key(identity_id)
        pipe = self.r.pipeline(transaction=True)
        pipe.hmget(key, "descriptor_model", "created_at_ms")
        pipe.lrange(tmpl, 0, -1)
        pipe.lrange(info, 0, -1)
        (model, created), blobs, infos = pipe.execute()
        if created is None:
            return None
        if len(infos) != len(blobs):
            self.migrate_templates(identity_id)
            return self.templates(identity_id)
        return ((model or LEGACY_DESCRIPTOR_MODEL.encode()).decode(),
                [(TemplateInfo.from_json(i), np.frombuffer(b, "<f4")) for i, b in zip(infos, blobs)])

    def migrate_templates(self, identity_id: str) -> None:
        """Ids for templates stored before templates had them (info list shorter than the vectors)."""
        key, tmpl, info = identity_key(identity_id), templates_key(identity_id), template_info_key(identity_id)
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, tmpl, info)
                    created = pipe.hget(key, "created_at_ms")
                    have, need = pipe.llen(info), pipe.llen(tmpl)
                    if created is None or have == need:
                        pipe.unwatch()
                        return
                    known = [TemplateInfo.from_json(i) for i in pipe.lrange(info, 0, -1)][:need]
                    infos = known + _legacy_infos(need - len(known), int(created))
                    pipe.multi()
                    pipe.delete(info)
                    pipe.rpush(info, *[i.to_json() for i in infos])
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def _rewrite(self, identity_id: str, change) -> bool | None:
        """Read the identity's templates, let `change(model, [(info, vector)])` say the new list and model
        (None: change nothing), write them and re-index, all under WATCH. None if nothing was written."""
        key, tmpl, info = identity_key(identity_id), templates_key(identity_id), template_info_key(identity_id)
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, tmpl, info)
                    if not pipe.exists(key):
                        pipe.unwatch()
                        return None
                    model, old_enrol, created = (
                        v.decode() if v is not None else None
                        for v in pipe.hmget(key, "descriptor_model", "enrol_key", "created_at_ms"))
                    model = model or LEGACY_DESCRIPTOR_MODEL
                    blobs = pipe.lrange(tmpl, 0, -1)
                    infos = [TemplateInfo.from_json(i) for i in pipe.lrange(info, 0, -1)][: len(blobs)]
                    infos += _legacy_infos(len(blobs) - len(infos), int(created or 0))
                    wanted = change(model, [(i, np.frombuffer(b, "<f4")) for i, b in zip(infos, blobs)])
                    if wanted is None:
                        pipe.unwatch()
                        return None
                    everything, new_model = wanted
                    vectors = np.stack([t for _, t in everything])
                    pipe.multi()
                    pipe.delete(tmpl, info)
                    pipe.rpush(tmpl, *[t.astype("<f4").tobytes() for t in vectors])
                    pipe.rpush(info, *[i.to_json() for i, _ in everything])
                    pipe.hset(key, mapping={"descriptor_model": new_model, "templates": len(everything)})
                    _index(pipe, identity_id, new_model, vectors,
                           (model, int(old_enrol)) if old_enrol is not None else None)
                    pipe.incr(GALLERY_VERSION)
                    pipe.execute()
                    return True
                except redis.WatchError:  # changed under us (another enrolment or a delete): look again
                    continue

    def gallery_version(self) -> int:
        return int(self.r.get(GALLERY_VERSION) or 0)

    def migrate(self) -> int:
        """At start, once: template ids for identities stored before templates had them, and the
        by-name index. Returns how many identities were looked at."""
        if self.r.get(IDENTITY_SCHEMA) == b"2":
            return 0
        done = 0
        for raw_id in self.r.zrange(IDENTITIES, 0, -1):
            identity_id = raw_id.decode()
            name = self.r.hget(identity_key(identity_id), "name")
            if name is None:
                continue
            self.r.sadd(identity_name_key(name.decode()), identity_id)
            self.migrate_templates(identity_id)
            done += 1
        self.r.set(IDENTITY_SCHEMA, 2)
        return done

    def index_gallery(self) -> int:
        """Put identities enrolled before the gallery lived in vector sets into them (once); returns how
        many. Later enrolments index themselves."""
        if self.r.get(GALLERY_SCHEMA) == b"1":
            return 0
        done = 0
        for raw_id in self.r.zrange(IDENTITIES, 0, -1):
            identity_id = raw_id.decode()
            meta = self.identity(identity_id)
            blobs = self.r.lrange(templates_key(identity_id), 0, -1)
            if not meta or not blobs or "enrol_key" in meta:
                continue
            pipe = self.r.pipeline(transaction=True)
            _index(pipe, identity_id, meta.get("descriptor_model", LEGACY_DESCRIPTOR_MODEL),
                   np.stack([np.frombuffer(b, "<f4") for b in blobs]), None)
            pipe.incr(GALLERY_VERSION)
            pipe.execute()
            done += 1
        self.r.set(GALLERY_SCHEMA, 1)
        return done


def _index(pipe: redis.client.Pipeline, identity_id: str, model: str, templates: np.ndarray,
           old: tuple[str, int] | None) -> None:
    """Queue the identity's template into its model's vector set and enrolment counts (`old`: the model
    and enrolment key it was counted under before, if it was)."""
    template = identity_template(templates).astype("<f4")
    if old is not None:
        pipe.hincrby(enrol_counts_key(old[0]), str(old[1]), -1)
        if old[0] != model:
            pipe.execute_command("VREM", gallery_key(old[0]), identity_id)
    key = enrol_key(len(templates))
    pipe.hincrby(enrol_counts_key(model), str(key), 1)
    pipe.hset(identity_key(identity_id), "enrol_key", key)
    pipe.set(mean_key(identity_id), template.tobytes())
    # Q8: a quarter of float32's memory for the approximate pass; the exact cosine comes from mean_key.
    pipe.execute_command("VADD", gallery_key(model), "FP32", template.tobytes(), identity_id, "Q8")
