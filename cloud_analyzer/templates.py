"""An identity's templates in Redis, each with an id: `templates_key` holds the vectors,
`template_info_key` what each one is (its id, where it came from, its quality, when it was added), in the
same order; both are rewritten together under WATCH, with the identity's gallery entry (`index_identity`: its
mean template in the model's vector set, the enrolment counts), so every replica's next search sees the
change. `template_owners_of` (per gallery shard) maps a template id to its identity (lookups by template id alone).

Identities stored before templates had ids get them once, at start (`IdentityStore.migrate`) or on the
first read. An identity may hold no template (a subject created empty through the CompreFace-compatible
API): it is then in no vector set and matches nothing until one is added.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass

import numpy as np
import redis

from facecodec.openset import enrol_key, identity_template
from service_common.redis_keys import (
    GALLERY_SHARDS,
    enrol_counts_of,
    gallery_of,
    gallery_version_of,
    identity_key,
    mean_key,
    template_info_key,
    template_owners_key,
    template_owners_of,
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


class TemplateStore:
    """Template reads and changes; `r` is the Redis client (Store sets it)."""

    r: redis.Redis

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
                    pipe.hset(template_owners_of(identity_id), mapping={i.template_id: identity_id for i in infos})
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def owner(self, template_id: str) -> str | None:
        """The identity holding this template, if any."""
        pipe = self.r.pipeline(transaction=False)  # the template id says nothing of its shard: ask each
        for shard in range(GALLERY_SHARDS):
            pipe.hget(template_owners_key(shard), template_id)
        return next((owner.decode() for owner in pipe.execute() if owner), None)

    def clear_templates(self, identity_id: str) -> int | None:
        """Remove every template: the identity stays, out of the gallery (it matches nothing) until one
        is added. Returns how many were removed; None if there is no such identity."""
        key, tmpl, info = identity_key(identity_id), templates_key(identity_id), template_info_key(identity_id)
        with self.r.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key, tmpl, info)
                    model, enrol = pipe.hmget(key, "descriptor_model", "enrol_key")
                    if not pipe.exists(key):
                        pipe.unwatch()
                        return None
                    ids = [TemplateInfo.from_json(i).template_id for i in pipe.lrange(info, 0, -1)]
                    count = pipe.llen(tmpl)
                    pipe.multi()
                    if model is not None and enrol is not None:
                        pipe.execute_command("VREM", gallery_of(model.decode(), identity_id), identity_id)
                        pipe.hincrby(enrol_counts_of(model.decode(), identity_id), enrol.decode(), -1)
                        pipe.hdel(key, "enrol_key")
                    if ids:
                        pipe.hdel(template_owners_of(identity_id), *ids)
                    pipe.delete(tmpl, info, mean_key(identity_id))
                    pipe.hset(key, "templates", 0)
                    pipe.incr(gallery_version_of(identity_id))
                    pipe.execute()
                    return int(count)
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
                    gone = {i.template_id for i in infos} - {i.template_id for i, _ in everything}
                    pipe.multi()
                    if gone:
                        pipe.hdel(template_owners_of(identity_id), *gone)
                    pipe.hset(template_owners_of(identity_id),
                              mapping={i.template_id: identity_id for i, _ in everything})
                    pipe.delete(tmpl, info)
                    pipe.rpush(tmpl, *[t.astype("<f4").tobytes() for t in vectors])
                    pipe.rpush(info, *[i.to_json() for i, _ in everything])
                    pipe.hset(key, mapping={"descriptor_model": new_model, "templates": len(everything)})
                    index_identity(pipe, identity_id, new_model, vectors,
                           (model, int(old_enrol)) if old_enrol is not None else None)
                    pipe.incr(gallery_version_of(identity_id))
                    pipe.execute()
                    return True
                except redis.WatchError:  # changed under us (another enrolment or a delete): look again
                    continue


def index_identity(pipe: redis.client.Pipeline, identity_id: str, model: str, templates: np.ndarray,
           old: tuple[str, int] | None) -> None:
    """Queue the identity's template into its model's vector set and enrolment counts (`old`: the model
    and enrolment key it was counted under before, if it was)."""
    template = identity_template(templates).astype("<f4")
    if old is not None:
        pipe.hincrby(enrol_counts_of(old[0], identity_id), str(old[1]), -1)
        if old[0] != model:
            pipe.execute_command("VREM", gallery_of(old[0], identity_id), identity_id)
    key = enrol_key(len(templates))
    pipe.hincrby(enrol_counts_of(model, identity_id), str(key), 1)
    pipe.hset(identity_key(identity_id), "enrol_key", key)
    pipe.set(mean_key(identity_id), template.tobytes())
    # Q8: a quarter of float32's memory for the approximate pass; the exact cosine comes from mean_key.
    pipe.execute_command("VADD", gallery_of(model, identity_id), "FP32", template.tobytes(), identity_id, "Q8")
