"""One pagination style for every list: an opaque `cursor`, a `limit`, and `next_cursor` in the
answer (null on the last page).

A cursor is the position after the last item returned, as JSON in URL-safe base64: clients pass it
back unchanged and never build one. A cursor that does not decode, or decodes to the wrong shape,
is a client error (422), like any other bad query value.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import HTTPException, Query
from pydantic import BaseModel

MAX_CURSOR_CHARS = 400

CursorQuery = Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS,
                                          description="`next_cursor` of the previous page; omit for the first")]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(position: list[Any]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: tuple[type, ...]) -> list[Any]:
    """The position a cursor holds, checked against the kinds of its parts; 422 if it is not one."""
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise HTTPException(422, "cursor: not a cursor this API gave out") from exc
    if (not isinstance(position, list) or len(position) != len(kinds)
            or not all(isinstance(p, k) and not (k is int and isinstance(p, bool)) for p, k in zip(position, kinds))):
        raise HTTPException(422, "cursor: not a cursor this API gave out")
    return position


def page_of(rows: Sequence[T], cursor: str | None, limit: int, key: Callable[[T], list[Any]],
            kinds: tuple[type, ...], descending: bool = False) -> Page[T]:
    """A page of a list held whole in memory (keys, cameras): ordered by `key` (unique per row), starting
    after the cursor's key, so rows added or removed meanwhile do not shift the pages."""
    ordered = sorted(rows, key=key, reverse=descending)
    if cursor:
        after = decode_cursor(cursor, kinds)
        ordered = [r for r in ordered if (key(r) < after if descending else key(r) > after)]
    page = ordered[:limit]
    more = len(ordered) > limit
    return Page(items=page, next_cursor=encode_cursor(key(page[-1])) if more else None)


def zset_positions(client: Any, key: str, after: tuple[int, str] | None, batch: int,
                   descending: bool = False) -> Iterator[tuple[int, str]]:
    """(score, member) of a Redis sorted set whose scores are integers (times in ms, sizes), in score
    order and, for equal scores, in Redis's member order, strictly after position `after`: the keyset
    pages of every list kept in a sorted set. Read `batch` at a time, for as long as the caller reads."""
    offset = 0
    while True:
        if descending:
            rows = client.zrevrangebyscore(key, "+inf" if after is None else after[0], "-inf", start=offset,
                                           num=batch, withscores=True)
        else:
            rows = client.zrangebyscore(key, "-inf" if after is None else after[0], "+inf", start=offset,
                                        num=batch, withscores=True)
        if not rows:
            return
        offset += len(rows)
        for member, score in rows:
            position = (int(score), member.decode())
            if after is None or (position < after if descending else position > after):
                yield position


def merged_positions(client: Any, keys: Sequence[str], hi: float | str, lo: float | str,
                     after: tuple[int, str] | None, batch: int) -> Iterator[tuple[int, str]]:
    """(score, member) of several sorted sets (the shards of one index), newest first and, for equal
    scores, in reverse member order (Redis's own for one set), within [lo, hi] and strictly after position
    `after`: one list over shards with the same cursor as over one set. Each set is read `batch` at a time,
    for as long as the caller reads; a member seen twice (offsets shift under concurrent writes) once."""

    def one(key: str) -> Iterator[tuple[int, str]]:
        offset = 0
        while True:
            rows = client.zrevrangebyscore(key, hi, lo, start=offset, num=batch, withscores=True)
            if not rows:
                return
            offset += len(rows)
            for member, score in rows:
                position = (int(score), member.decode())
                if after is None or position < after:
                    yield position

    seen: set[str] = set()
    for position in heapq.merge(*(one(k) for k in keys), reverse=True):
        if position[1] not in seen:
            seen.add(position[1])
            yield position


def merged_zset_positions(client: Any, keys: Sequence[str], after: tuple[int, str] | None, batch: int,
                          descending: bool = False) -> Iterator[tuple[int, str]]:
    """`zset_positions` over the shards of one sorted set (a member in one shard only), in the same order."""
    if len(keys) == 1:
        return zset_positions(client, keys[0], after, batch, descending)
    return heapq.merge(*(zset_positions(client, k, after, batch, descending) for k in keys), reverse=descending)
