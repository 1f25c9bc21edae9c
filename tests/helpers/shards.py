"""What tests read across the face shards (service_common/redis_keys.py): the ingest streams, the face and
sighting indexes, summed or merged as one."""

from __future__ import annotations

import redis

from service_common.redis_keys import (
    FACE_INDEXES,
    GROUP,
    INGEST_STREAMS,
    SIGHTINGS_SHARDS,
    face_shard,
    faces_key,
    sightings_key,
)


def read_ingest(client: redis.Redis, consumer: str, count: int, group: str = GROUP) -> list[tuple[bytes, dict]]:
    """New entries for `consumer`, every shard's, as the worker reads them: (entry id, fields)."""
    found = []
    for stream in INGEST_STREAMS:
        for _, entries in client.xreadgroup(group, consumer, {stream: ">"}, count=count) or []:
            found += entries
    return found[:count] if count else found


def pending(client: redis.Redis) -> int:
    """Entries delivered to a worker and not acknowledged, over every shard."""
    return sum(int(client.xpending(s, GROUP)["pending"]) for s in INGEST_STREAMS if client.exists(s))


def ingest_entries(client: redis.Redis) -> list[dict]:
    return [fields for s in INGEST_STREAMS for _, fields in client.xrange(s)]


def ingest_len(client: redis.Redis) -> int:
    return sum(int(client.xlen(s)) for s in INGEST_STREAMS)


def consumers(client: redis.Redis) -> list[dict]:
    """Every consumer of every shard's group (a consumer appears once per shard it read)."""
    found = []
    for stream in INGEST_STREAMS:
        try:
            found += client.xinfo_consumers(stream, GROUP)
        except redis.ResponseError:  # no stream or group yet
            continue
    return found


def sightings(client: redis.Redis) -> set[str]:
    return {m.decode() for key in SIGHTINGS_SHARDS for m in client.zrange(key, 0, -1)}


def sightings_count(client: redis.Redis) -> int:
    return sum(int(client.zcard(key)) for key in SIGHTINGS_SHARDS)


def sighted(client: redis.Redis, face_id: str) -> bool:
    return client.zscore(sightings_key(face_shard(face_id)), face_id) is not None


def stored_faces(client: redis.Redis) -> set[str]:
    return {m.decode() for key in FACE_INDEXES for m in client.zrange(key, 0, -1)}


def stored_count(client: redis.Redis) -> int:
    return sum(int(client.zcard(key)) for key in FACE_INDEXES)


def in_face_index(client: redis.Redis, face_id: str) -> bool:
    return client.zscore(faces_key(face_shard(face_id)), face_id) is not None
