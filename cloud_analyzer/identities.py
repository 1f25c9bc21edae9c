"""Identities in Redis: enrolment, renames and metadata, listings (by page, by exact name), and the
one-time moves of old identities (into the vector sets; template ids and the name index). Every change
writes the identity, its templates, its vector-set element, the enrolment counts and the gallery version
in one transaction, so every replica's next search sees it (cloud_analyzer/gallery.py searches; erasure
removes). Templates and the gallery entry they make: cloud_analyzer/templates.py.
"""

from __future__ import annotations

import json
import time
from itertools import islice
from typing import Any

import numpy as np
import redis

from cloud_analyzer.templates import LEGACY_DESCRIPTOR_MODEL, TemplateInfo, TemplateStore, index_identity
from service_common.pagination import merged_zset_positions
from service_common.redis_keys import (
    GALLERY_SCHEMA,
    GALLERY_SHARDS,
    IDENTITY_INDEXES,
    IDENTITY_SCHEMA,
    gallery_version_key,
    gallery_version_of,
    identities_of,
    identity_key,
    identity_name_key,
    name_index_of,
    template_info_key,
    template_owners_of,
    templates_key,
)

__all__ = ["LEGACY_DESCRIPTOR_MODEL", "IdentityStore", "TemplateInfo", "queue_identity"]


def queue_identity(pipe: redis.client.Pipeline, identity_id: str, name: str, templates: np.ndarray,
                   descriptor_model: str, infos: list[TemplateInfo] | None = None,
                   metadata: dict | None = None) -> None:
    """Queue a new identity's writes (all in its gallery shard's slot) in `pipe`: one enrolment in a
    transaction (`IdentityStore.add_identity`), or many in one pipeline (bench/cluster_scaling.py's bulk fill)."""
    now = int(time.time() * 1000)
    infos = infos or [TemplateInfo.new("upload") for _ in templates]
    pipe.hset(identity_key(identity_id), mapping={"identity_id": identity_id, "name": name,
                                                  "created_at_ms": now, "templates": len(templates),
                                                  "descriptor_model": descriptor_model,
                                                  "metadata": json.dumps(metadata or {})})
    if len(templates):  # none: a subject created empty, in no vector set until a template comes
        pipe.rpush(templates_key(identity_id), *[t.astype("<f4").tobytes() for t in templates])
        pipe.rpush(template_info_key(identity_id), *[i.to_json() for i in infos])
        pipe.hset(template_owners_of(identity_id), mapping={i.template_id: identity_id for i in infos})
        index_identity(pipe, identity_id, descriptor_model, templates, None)
    pipe.sadd(name_index_of(name, identity_id), identity_id)
    pipe.zadd(identities_of(identity_id), {identity_id: now})
    pipe.incr(gallery_version_of(identity_id))


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any] | None:
    return {k.decode(): v.decode() for k, v in raw.items()} if raw else None


class IdentityStore(TemplateStore):
    """Identity records (and, from TemplateStore, their templates); `r` is the Redis client (Store sets it)."""

    r: redis.Redis

    def add_identity(self, identity_id: str, name: str, templates: np.ndarray, descriptor_model: str,
                     infos: list[TemplateInfo] | None = None, metadata: dict | None = None) -> None:
        pipe = self.r.pipeline(transaction=True)
        queue_identity(pipe, identity_id, name, templates, descriptor_model, infos, metadata)
        pipe.execute()

    def identity(self, identity_id: str) -> dict[str, Any] | None:
        return _decode(self.r.hgetall(identity_key(identity_id)))

    def identities(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of identities, oldest first; limit -1: all from offset."""
        positions = merged_zset_positions(self.r, IDENTITY_INDEXES, None, max(limit, 0) + offset + 16)
        ids = [i for _, i in islice(positions, offset, None if limit < 0 else offset + limit)]
        return self.rows(ids), self.identity_count()

    def identity_count(self) -> int:
        pipe = self.r.pipeline(transaction=False)
        for key in IDENTITY_INDEXES:
            pipe.zcard(key)
        return sum(int(n) for n in pipe.execute())

    def all_identity_ids(self) -> list[str]:
        """Every identity id, oldest first (the gallery shards merged)."""
        return [i for _, i in merged_zset_positions(self.r, IDENTITY_INDEXES, None, 1000)]

    def identities_after(self, after: tuple[int, str] | None, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` identities enrolled after position `after` (created_at_ms, identity_id), oldest
        first, and whether more follow."""
        ids = [i for _, i in islice(merged_zset_positions(self.r, IDENTITY_INDEXES, after, limit + 16), limit + 1)]
        rows = self.rows(ids[:limit])
        return rows, len(ids) > limit

    def ids_by_name(self, name: str) -> list[str]:
        pipe = self.r.pipeline(transaction=False)
        for shard in range(GALLERY_SHARDS):
            pipe.smembers(identity_name_key(name, shard))
        return sorted({i.decode() for members in pipe.execute() for i in members})

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
                        pipe.srem(name_index_of(old.decode(), identity_id), identity_id)
                        pipe.sadd(name_index_of(name, identity_id), identity_id)
                        pipe.hset(key, "name", name)
                        pipe.incr(gallery_version_of(identity_id))  # searches answer with the name
                    if metadata is not None:
                        pipe.hset(key, "metadata", json.dumps(metadata))
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    def gallery_version(self) -> int:
        """The sum of the gallery shards' versions: it grows with every change of any shard."""
        pipe = self.r.pipeline(transaction=False)
        for shard in range(GALLERY_SHARDS):
            pipe.get(gallery_version_key(shard))
        return sum(int(v or 0) for v in pipe.execute())

    def migrate(self) -> int:
        """At start, once: template ids for identities stored before templates had them, and the
        by-name index. Returns how many identities were looked at."""
        if self.r.get(IDENTITY_SCHEMA) == b"2":
            return 0
        done = 0
        for identity_id in self.all_identity_ids():
            name = self.r.hget(identity_key(identity_id), "name")
            if name is None:
                continue
            self.r.sadd(name_index_of(name.decode(), identity_id), identity_id)
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
        for identity_id in self.all_identity_ids():
            meta = self.identity(identity_id)
            blobs = self.r.lrange(templates_key(identity_id), 0, -1)
            if not meta or not blobs or "enrol_key" in meta:
                continue
            pipe = self.r.pipeline(transaction=True)
            index_identity(pipe, identity_id, meta.get("descriptor_model", LEGACY_DESCRIPTOR_MODEL),
                   np.stack([np.frombuffer(b, "<f4") for b in blobs]), None)
            pipe.incr(gallery_version_of(identity_id))
            pipe.execute()
            done += 1
        self.r.set(GALLERY_SCHEMA, 1)
        return done


