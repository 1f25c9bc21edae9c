"""The faces still pending in the ingest stream: stored by ingest, not yet decided by a worker. They are
the entries the consumer group has not acknowledged: delivered to a worker and not acked (its pending
entries list, XPENDING) and not yet delivered (after the group's last-delivered id). What is walked is
the backlog only, not the acknowledged history the stream keeps until retention trims it.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis

from service_common.redis_keys import GROUP, INGEST_STREAM

PAGE = 1_000  # stream entries per round trip


def pending_face_ids(client: redis.Redis) -> Iterator[str]:
    """Face ids of the unacknowledged entries, each once; delivered ones first, then the undelivered."""
    seen: set[str] = set()
    for face_id in (*_delivered(client), *_undelivered(client)):
        if face_id not in seen:
            seen.add(face_id)
            yield face_id


def _group(client: redis.Redis) -> dict | None:
    try:
        return next((g for g in client.xinfo_groups(INGEST_STREAM) if g["name"].decode() == GROUP), None)
    except redis.ResponseError:  # no stream yet
        return None


def _delivered(client: redis.Redis) -> list[str]:
    """Entries a worker has taken and not acknowledged (a worker may be deciding them now)."""
    if _group(client) is None:
        return []
    found, start = [], "-"
    while True:
        rows = client.xpending_range(INGEST_STREAM, GROUP, min=start, max="+", count=PAGE)
        if not rows:
            return found
        pipe = client.pipeline(transaction=False)
        for row in rows:  # the pending list names entries, not faces: read each entry (gone if erased)
            pipe.xrange(INGEST_STREAM, min=row["message_id"], max=row["message_id"])
        found += [entry[0][1][b"face_id"].decode() for entry in pipe.execute() if entry and b"face_id" in entry[0][1]]
        start = "(" + rows[-1]["message_id"].decode()


def _undelivered(client: redis.Redis) -> list[str]:
    """Entries no worker has taken yet: after the group's last-delivered id (all of them if there is no
    group yet: it is created to start from the stream's beginning)."""
    group = _group(client)
    start = "(" + group["last-delivered-id"].decode() if group is not None else "-"
    found = []
    while True:
        rows = client.xrange(INGEST_STREAM, min=start, count=PAGE)
        if not rows:
            return found
        found += [fields[b"face_id"].decode() for _, fields in rows if b"face_id" in fields]
        start = "(" + rows[-1][0].decode()
