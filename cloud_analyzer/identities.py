"""Identities and the gallery's index in Redis: enrolment, photos added, listings, the one-time move of
old identities into the vector sets. Every change writes the identity, its templates, its vector-set
element, the enrolment counts and the gallery version in one transaction, so every replica's next
search sees it (cloud_analyzer/gallery.py searches; erasure removes)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import redis

from facecodec.openset import enrol_key, identity_template
from service_common.redis_keys import (
    GALLERY_SCHEMA,
    GALLERY_VERSION,
    IDENTITIES,
    enrol_counts_key,
    gallery_key,
    identity_key,
    mean_key,
    templates_key,
)

# Identities enrolled before templates recorded their model were all made with this one (a fixed
# historical value, deliberately not the current default model).
LEGACY_DESCRIPTOR_MODEL = "faceplugin-fr_feature-512"


class IdentityStore:
    """Identity records and templates; `r` is the Redis client (Store sets it)."""

    r: redis.Redis

    def add_identity(self, identity_id: str, name: str, templates: np.ndarray, descriptor_model: str) -> None:
        now = int(time.time() * 1000)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(identity_key(identity_id), mapping={"identity_id": identity_id, "name": name,
                                                      "created_at_ms": now, "templates": len(templates),
                                                      "descriptor_model": descriptor_model})
        pipe.rpush(templates_key(identity_id), *[t.astype("<f4").tobytes() for t in templates])
        pipe.zadd(IDENTITIES, {identity_id: now})
        _index(pipe, identity_id, descriptor_model, templates, None)
        pipe.incr(GALLERY_VERSION)
        pipe.execute()

    def identity(self, identity_id: str) -> dict[str, Any] | None:
        raw = self.r.hgetall(identity_key(identity_id))
        return {k.decode(): v.decode() for k, v in raw.items()} if raw else None

    def identities(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of identities, oldest first; limit -1: all from offset."""
        end = -1 if limit < 0 else offset + limit - 1
        ids = [i.decode() for i in self.r.zrange(IDENTITIES, offset, end)]
        pipe = self.r.pipeline(transaction=False)
        for i in ids:
            pipe.hgetall(identity_key(i))
        rows = [{k.decode(): v.decode() for k, v in raw.items()} for raw in pipe.execute() if raw]
        return rows, int(self.r.zcard(IDENTITIES))

    def all_identities(self) -> list[dict[str, Any]]:
        rows, _ = self.identities(0, -1)
        return rows

    def add_templates(self, identity_id: str, templates: np.ndarray, descriptor_model: str, keep: int) -> bool:
        """Append templates (the newest `keep` stay), or replace them all when the identity's were made
        by another descriptor model. False if the identity is gone."""
        key, tmpl = identity_key(identity_id), templates_key(identity_id)
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, tmpl)
                    if not pipe.exists(key):
                        return False
                    model = (pipe.hget(key, "descriptor_model") or LEGACY_DESCRIPTOR_MODEL.encode()).decode()
                    old_enrol = pipe.hget(key, "enrol_key")
                    same_model = model == descriptor_model
                    kept = [np.frombuffer(b, "<f4") for b in pipe.lrange(tmpl, 0, -1)] if same_model else []
                    everything = np.stack([*kept, *templates])[-keep:]
                    pipe.multi()
                    pipe.delete(tmpl)
                    pipe.rpush(tmpl, *[t.astype("<f4").tobytes() for t in everything])
                    pipe.hset(key, mapping={"descriptor_model": descriptor_model, "templates": len(everything)})
                    _index(pipe, identity_id, descriptor_model, everything,
                           (model, int(old_enrol)) if old_enrol is not None else None)
                    pipe.incr(GALLERY_VERSION)
                    pipe.execute()
                    break
                except redis.WatchError:  # changed under us (another enrolment or a delete): look again
                    continue
        return True

    def gallery_version(self) -> int:
        return int(self.r.get(GALLERY_VERSION) or 0)

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
