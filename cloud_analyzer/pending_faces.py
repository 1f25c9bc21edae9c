"""The faces still pending in the ingest streams (one per face shard): stored by ingest, not yet decided
by a worker. They are, in each shard's stream, the entries the consumer group has not acknowledged:
delivered to a worker and not acked (its pending entries list, XPENDING) and not yet delivered (after the
group's last-delivered id). What is walked is the backlog only, not the acknowledged history the streams
keep until retention trims them.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis

from service_common.redis_keys import GROUP, INGEST_STREAMS

PAGE = 1_000  # stream entries per round trip


def pending_face_ids(client: redis.Redis) -> Iterator[str]:
    """Face ids of the unacknowledged entries, each once; per shard, delivered ones first, then the
    undelivered."""
    seen: set[str] = set()
    for stream in INGEST_STREAMS:
        for fields in unacknowledged_entries(client, stream):
            face_id = fields[b"face_id"].decode()
            if face_id not in seen:
                seen.add(face_id)
                yield face_id


def unacknowledged_entries(client: redis.Redis, stream: str) -> list[dict[bytes, bytes]]:
    """The fields of one stream's entries its group has not acknowledged (every one naming a face)."""
    return [f for f in (*_delivered(client, stream), *_undelivered(client, stream)) if b"face_id" in f]


def _group(client: redis.Redis, stream: str) -> dict | None:
    try:
        return next((g for g in client.xinfo_groups(stream) if g["name"].decode() == GROUP), None)
    except redis.ResponseError:  # no stream yet
        return None


def _delivered(client: redis.Redis, stream: str) -> list[dict[bytes, bytes]]:
    """Entries a worker has taken and not acknowledged (a worker may be deciding them now)."""
    if _group(client, stream) is None:
        return []
    found, start = [], "-"
    while True:
        rows = client.xpending_range(stream, GROUP, min=start, max="+", count=PAGE)
        if not rows:
            return found
        pipe = client.pipeline(transaction=False)
        for row in rows:  # the pending list names entries, not faces: read each entry (gone if erased)
            pipe.xrange(stream, min=row["message_id"], max=row["message_id"])
        found += [entry[0][1] for entry in pipe.execute() if entry]
        start = "(" + rows[-1]["message_id"].decode()


def _undelivered(client: redis.Redis, stream: str) -> list[dict[bytes, bytes]]:
    """Entries no worker has taken yet: after the group's last-delivered id (all of them if there is no
    group yet: it is created to start from the stream's beginning)."""
    group = _group(client, stream)
    start = "(" + group["last-delivered-id"].decode() if group is not None else "-"
    found = []
    while True:
        rows = client.xrange(stream, min=start, count=PAGE)
        if not rows:
            return found
        found += [fields for _, fields in rows]
        start = "(" + rows[-1][0].decode()
