"""A standalone Redis written under the key names from before hash tags keeps everything at the analyzer's
start (cloud_analyzer/key_migration.py): the test writes a data set with today's code, moves it to the
old names (spelled here, as docs/redis-keys.md had them), migrates, and compares every key's content."""

from __future__ import annotations

import re
import time
import uuid

import numpy as np
import pytest
import redis

from cloud_analyzer.clusters import Clusters, _Member, new_cluster_id
from cloud_analyzer.erasure import Eraser
from cloud_analyzer.events.schema import EventFilter
from cloud_analyzer.events.webhooks import WebhookStore
from cloud_analyzer.gallery import Gallery
from cloud_analyzer.key_migration import migrate_keys
from cloud_analyzer.pending_faces import pending_face_ids
from cloud_analyzer.store import Outcome, Store
from service_common.access import AuditLog, KeyStore, new_token
from service_common.key_layout import LayoutMismatch, layout_text
from service_common.redis_client import is_cluster
from service_common.redis_keys import CLUSTER_SHARDS, FACE_SHARDS, GALLERY_SHARDS, KEY_LAYOUT, KEY_SCHEMA, LAYOUT
from service_common.redis_slots import unchecked
from tests.helpers.shards import read_ingest

OLD_INGEST = "fc:ingest"


def _old_name(new: str) -> str:
    """The name a key had before hash tags (the table of docs/redis-keys.md before this layout)."""
    tag, _, rest = new[len("fc:{"):].partition("}:")
    if re.fullmatch(r"f[0-9]+\.[0-9]+", tag):  # face shard (FACE_TAGS)
        kind, _, face_id = rest.partition(":")
        return {"face": f"fc:face:{face_id}", "fusion": f"fc:fusion:{face_id}",
                "corrections": f"fc:corrections:{face_id}"}[kind]
    if tag.startswith("g") and SHARD_TAG.fullmatch(tag):  # gallery shard (GALLERY_TAGS)
        if rest.startswith("identity:"):
            return "fc:" + rest
        if rest.startswith("identityname:"):
            return "fc:" + rest
        if rest.startswith("vgallery:"):
            return "fc:" + rest
        if rest.startswith("gallery:enrol:"):
            return "fc:" + rest
        raise AssertionError(new)
    if tag.startswith("i:"):
        return f"fc:sightings:identity:{tag[2:]}"
    if tag.startswith("cam:"):
        return f"fc:sightings:camera:{tag[4:]}"
    if tag.startswith("t:"):
        return {"faces": f"fc:track:{tag[2:]}", "info": f"fc:trackinfo:{tag[2:]}",
                "erased": f"fc:trackerased:{tag[2:]}"}[rest]
    if tag == "clusters" or CLUSTER_TAG.fullmatch(tag):  # one cluster shard's tag, or one of several
        fixed = {"all": "fc:clusters", "size": "fc:clusters:size", "of": "fc:clusters:of"}
        return fixed.get(rest) or "fc:" + rest  # cluster:{id}[:part], vunknown:{model}
    if tag == "erasures":
        return {"all": "fc:erasures", "pending": "fc:erasures:pending"}.get(rest) or "fc:" + rest
    if tag == "keys":
        return "fc:keys" if rest == "all" else "fc:" + rest
    if tag == "audit":
        return "fc:audit" if rest == "stream" else "fc:audit:dropped"
    if tag == "webhooks":
        return "fc:webhooks" if rest == "all" else "fc:" + rest
    raise AssertionError(new)


SHARD_TAG = re.compile(r"f[0-9]+\.[0-9]+|g[0-9]+(\.[0-9]+)?")  # face shard tags (FACE_TAGS), gallery (GALLERY_TAGS)
CLUSTER_TAG = re.compile(r"c[0-9]+\.[0-9]+")  # with several cluster shards (CLUSTER_TAGS)
# Shard keys merged back into the one key they were.
MERGED = {"faces": "fc:faces", "sightings": "fc:sightings", "identities": "fc:identities",
          "templates:owner": "fc:templates:owner", "gallery:version": "fc:gallery:version"}


def _dump(client: redis.Redis, key: bytes) -> tuple:
    kind = client.type(key).decode()
    read = {"hash": client.hgetall, "set": lambda k: sorted(client.smembers(k)), "string": client.get,
            "list": lambda k: client.lrange(k, 0, -1), "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
            "stream": lambda k: [f for _, f in client.xrange(k)],
            "vectorset": lambda k: int(client.execute_command("VCARD", k))}
    return kind, read[kind](key)


def _to_old_layout(client: redis.Redis) -> None:
    client = unchecked(client)  # old and new names in different slots: a standalone Redis only
    for raw in list(client.scan_iter(match="fc:{*", count=1000)):
        new = raw.decode()
        tag, _, rest = new[len("fc:{"):].partition("}:")
        if SHARD_TAG.fullmatch(tag) and (rest in MERGED or rest == "ingest"):
            continue
        if (tag == "clusters" or CLUSTER_TAG.fullmatch(tag)) and (
                rest.startswith("lock:") or rest in ("forgotten", "moves", "moved")):
            client.delete(new)  # the old layout had no counter of faces taken out of the clusters
            continue
        if CLUSTER_TAG.fullmatch(tag) and rest in ("all", "size", "of"):  # several shards' indexes: one
            old = _old_name(new)
            if client.type(raw) == b"zset":
                client.zadd(old, dict(client.zrange(raw, 0, -1, withscores=True)))
            else:
                client.hset(old, mapping=client.hgetall(raw))
            client.delete(raw)
            continue
        client.rename(new, _old_name(new))
    for rest, old in MERGED.items():
        for raw in [r for r in client.scan_iter(match=f"fc:{{*}}:{rest}") if SHARD_TAG.fullmatch(
                r.decode()[len("fc:{"):].partition("}")[0])]:
            kind = client.type(raw)
            if kind == b"zset":
                for member, score in client.zrange(raw, 0, -1, withscores=True):
                    client.zadd(old, {member: score})
            elif kind == b"hash":
                client.hset(old, mapping=client.hgetall(raw))
            else:
                client.set(old, client.get(raw))
            client.delete(raw)
    for raw in list(client.scan_iter(match="fc:{*}:ingest")):
        client.delete(raw)
    client.delete(KEY_SCHEMA)


def test_an_old_layout_is_renamed_once_and_nothing_is_lost(redis_client: redis.Redis) -> None:
    if is_cluster(redis_client):
        pytest.skip("the old layout existed on standalone Redis only")
    store = Store(redis_client)
    store.ensure_group()
    now = int(time.time() * 1000)
    rng = np.random.default_rng(5)
    template = rng.standard_normal(512).astype(np.float32)
    template /= np.linalg.norm(template)
    identity = uuid.uuid4().hex
    store.add_identity(identity, "Ann", template[None], "m1")
    faces = [uuid.uuid4().hex for _ in range(6)]
    for i, face_id in enumerate(faces):
        store.ingest(face_id, {"base_layer": b"x%d" % i, "camera_id": "cam-1", "captured_at_ms": now - i,
                               "edge_id": "edge-1", "track_id": "tr-1"})
    for stream_id, fields in read_ingest(redis_client, "w", 4):  # four decided, two still queued
        face = store.face(fields[b"face_id"].decode())
        named = Outcome("recognised", identity, "Ann", 0.9, 0.5, 0.01) if face["face_id"] == faces[0] else \
            Outcome("unknown", similarity=0.1, threshold=0.5, fpir=0.01)
        store.record_result(stream_id, face, named, template, "m1", fusion_ttl_ms=60_000)
    decided = {s.face_id for s in store.sightings(None, None, None, None, None, 100)[0]}
    queued = set(faces) - decided - {faces[-1]}
    store.close_track("tr-1", {"camera_id": "cam-1", "faces_seen": 6}, 3600)
    token = new_token()
    KeyStore(redis_client).register(token, "ops", ["admin"])
    AuditLog(redis_client).record("face.read", "ok", 200, key_id="k")
    WebhookStore(redis_client).create("https://example.org/hook", EventFilter())
    assert Eraser(redis_client).face(faces[-1], "k") is not None  # an erasure record, its edge's queue
    unknown = next(f for f in faces if f in decided and f != faces[0])
    member = _Member(unknown, now, "cam-1", b"x", template)
    assert Clusters(redis_client)._add(new_cluster_id(), "m1", member)
    before = {raw: _dump(redis_client, raw) for raw in redis_client.scan_iter(match="fc:*")
              if not raw.endswith((b":ingest", b":forgotten")) and b":lock:" not in raw}

    # The old layout: one ingest stream with its group, two entries not acknowledged (one delivered).
    _to_old_layout(redis_client)
    assert not list(redis_client.scan_iter(match="fc:{*"))
    redis_client.xgroup_create(OLD_INGEST, "recognisers", id="0", mkstream=True)
    for face_id in sorted(queued):
        redis_client.xadd(OLD_INGEST, {"face_id": face_id})
    redis_client.xadd(OLD_INGEST, {"face_id": faces[0]})  # decided and acknowledged: history
    redis_client.xreadgroup("recognisers", "old", {OLD_INGEST: ">"}, count=1)

    moved = migrate_keys(redis_client)
    assert moved >= len(before) // 2
    assert redis_client.get(KEY_SCHEMA) == b"2" and not redis_client.exists(OLD_INGEST)
    after = {raw: _dump(redis_client, raw) for raw in redis_client.scan_iter(match="fc:*")
             if not raw.endswith(b":ingest") and raw not in (KEY_SCHEMA.encode(), KEY_LAYOUT.encode())}
    # The one old version becomes every gallery shard's (the sum, the gallery's version, never goes back).
    versions = {key for key in after if key.endswith(b":gallery:version")}
    assert len(versions) == GALLERY_SHARDS and store.gallery_version() >= sum(
        int(before.pop(key)[1]) for key in [k for k in before if k.endswith(b":gallery:version")])
    after = {key: value for key, value in after.items() if key not in versions}
    assert set(after) == set(before), (set(before) - set(after), set(after) - set(before))
    assert after == before  # every key back under its name, with its content
    assert migrate_keys(redis_client) == 0  # once

    # And the services read it: the queued faces are pending again, in their shards; the gallery finds Ann.
    assert set(pending_face_ids(redis_client)) == queued | {faces[0]}
    store.ensure_group()
    assert {fields[b"face_id"].decode() for _, fields in read_ingest(redis_client, "w2", 100)} == queued | {faces[0]}
    _, matches = Gallery(store).search(template, "m1", 1)
    assert matches and matches[0].identity_id == identity
    assert KeyStore(redis_client).verify(token) is not None
    assert Clusters(redis_client).of(unknown) is not None


def test_an_analyzer_with_other_shard_counts_than_the_data_refuses(redis_client: redis.Redis) -> None:
    assert migrate_keys(redis_client) == 0  # a new Redis: this layout is recorded
    # Written by analyzers with another FACECODEC_GALLERY_SHARDS, FACECODEC_FACE_SHARDS or
    # FACECODEC_CLUSTER_SHARDS (one cluster shard: the layout text from before cluster shards).
    others = (layout_text(FACE_SHARDS, GALLERY_SHARDS + 6, CLUSTER_SHARDS),
              layout_text(FACE_SHARDS * 3, GALLERY_SHARDS, CLUSTER_SHARDS),
              layout_text(FACE_SHARDS, GALLERY_SHARDS, 1 if CLUSTER_SHARDS > 1 else 3))
    for other in others:
        redis_client.set(KEY_LAYOUT, other)
        with pytest.raises(LayoutMismatch, match="FACECODEC_FACE_SHARDS, FACECODEC_GALLERY_SHARDS and "
                                                 "FACECODEC_CLUSTER_SHARDS"):
            migrate_keys(redis_client)
    redis_client.set(KEY_LAYOUT, LAYOUT)
    assert migrate_keys(redis_client) == 0  # the same counts: runs
