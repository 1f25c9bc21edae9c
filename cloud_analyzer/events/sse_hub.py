"""SSE fan-out: one reader of the events stream per process (XREAD BLOCK on redis.asyncio), handing each
entry to every connected client's bounded queue. A client whose queue is full is dropped (its stream
ends; it reconnects with Last-Event-ID and replays from Redis) instead of holding memory or slowing the
others down. The reader keeps no consumer group: SSE clients resume by id, not by acknowledgement."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from cloud_analyzer.events.schema import Event, EventFilter, decode_entry, stream_id
from service_common.redis_keys import EVENTS_STREAM

log = logging.getLogger(__name__)
REPLAY_PAGE = 500


class Subscription:
    def __init__(self, want: EventFilter, capacity: int) -> None:
        self.want = want
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(capacity)
        self.dropped = False

    def offer(self, event: Event) -> bool:
        """False once the client could not keep up (its queue was full): it is dropped."""
        if self.dropped:
            return False
        if not self.want.matches(event):
            return True
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.dropped = True
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.get_nowait()  # room for the end marker
                self.queue.put_nowait(None)
            return False


class EventHub:
    def __init__(self, client: aioredis.Redis, capacity: int, block_ms: int = 1000) -> None:
        self.r, self.capacity, self.block_ms = client, capacity, block_ms
        self._subs: set[Subscription] = set()
        self._task: asyncio.Task | None = None
        self._closed = False
        self.dropped_clients = 0

    @property
    def clients(self) -> int:
        return len(self._subs)

    async def _last_id(self) -> str:
        rows = await self.r.xrevrange(EVENTS_STREAM, count=1)
        return rows[0][0].decode() if rows else "0-0"

    async def _pump(self) -> None:
        last = await self._last_id()
        while not self._closed:
            try:
                rows = await self.r.xread({EVENTS_STREAM: last}, count=REPLAY_PAGE, block=self.block_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: clients keep their connection, the reader retries
                log.warning("sse: reading the events stream failed: %s; retrying", exc)
                await asyncio.sleep(1.0)
                continue
            for entry_id, fields in rows[0][1] if rows else []:
                event = decode_entry(entry_id, fields)
                last = event.id
                for sub in list(self._subs):
                    if not sub.offer(event):
                        self._subs.discard(sub)
                        self.dropped_clients += 1
                        log.warning("sse: a client fell %d events behind; dropped (it resumes by Last-Event-ID)",
                                    self.capacity)

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._pump(), name="sse-hub")

    async def close(self) -> None:
        """End every client's stream, then the reader."""
        self._closed = True
        for sub in list(self._subs):
            sub.dropped = True
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)
        self._subs.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _replay(self, after: str, want: EventFilter) -> AsyncIterator[Event]:
        while True:
            rows = await self.r.xrange(EVENTS_STREAM, min=f"({after}", count=REPLAY_PAGE)
            for entry_id, fields in rows:
                event = decode_entry(entry_id, fields)
                after = event.id
                if want.matches(event):
                    yield event
            if len(rows) < REPLAY_PAGE:
                return

    async def subscribe(self, want: EventFilter, last_event_id: str | None) -> AsyncIterator[Event]:
        """The matching events after `last_event_id` (replayed from the stream), then live ones; ends when
        the client is dropped or the hub closes."""
        if self._closed:
            return
        after = last_event_id or await self._last_id()
        sent = stream_id(after)
        if last_event_id:  # most of the replay before joining the live feed, so the queue does not overflow
            async for event in self._replay(after, want):
                sent = stream_id(event.id)
                yield event
        sub = Subscription(want, self.capacity)
        self._subs.add(sub)
        self._ensure_running()
        try:
            # What arrived between the replay's end and joining: replayed again, the queue's copies skipped.
            async for event in self._replay(f"{sent[0]}-{sent[1]}", want):
                sent = stream_id(event.id)
                yield event
            while True:
                event = await sub.queue.get()
                if event is None:
                    return
                if stream_id(event.id) > sent:
                    sent = stream_id(event.id)
                    yield event
        finally:
            self._subs.discard(sub)
