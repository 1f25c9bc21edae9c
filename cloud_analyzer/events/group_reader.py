"""A thread that reads the events stream with its own consumer group: what the webhook deliverer and the
MQTT publisher are built on. At least once: an entry is acknowledged only after its handler says it is
done with it, and entries left pending (a crash, a restart) are read again first, so a restarted
publisher resumes where its group stopped, not at the live end."""

from __future__ import annotations

import logging
import threading

import redis

from cloud_analyzer.events.schema import Event, decode_entry
from service_common.redis_keys import EVENTS_STREAM

log = logging.getLogger(__name__)


class GroupReader:
    """Subclasses implement `handle(events)`: return the ids that are done (acknowledged now); ids held
    back are acknowledged later with `ack`."""

    batch = 256

    def __init__(self, client: redis.Redis, group: str, consumer: str, block_ms: int = 1000) -> None:
        self.r, self.group, self.consumer, self.block_ms = client, group, consumer, block_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"events-{group}", daemon=True)

    def ensure_group(self) -> None:
        """The group starts at the stream's end when first made: a new publisher sends what happens from
        now on, not the whole retained history."""
        try:
            self.r.xgroup_create(EVENTS_STREAM, self.group, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def start(self) -> None:
        self.ensure_group()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def handle(self, events: list[Event]) -> list[str]:
        raise NotImplementedError

    def tick(self) -> None:
        """Called after every read, events or not (at least once per block_ms): periodic upkeep."""

    def ack(self, *ids: str) -> None:
        if ids:
            self.r.xack(EVENTS_STREAM, self.group, *ids)

    def _read(self, start: str) -> list[Event]:
        rows = self.r.xreadgroup(self.group, self.consumer, {EVENTS_STREAM: start}, count=self.batch,
                                 block=self.block_ms if start == ">" else None)
        entries = rows[0][1] if rows else []
        trimmed = [i for i, f in entries if not f]  # pending entries retention trimmed away come back empty
        self.ack(*(i.decode() for i in trimmed))
        return [decode_entry(i, f) for i, f in entries if f]

    def _run(self) -> None:
        start = "0"  # first what this consumer left pending (a restart), then new entries
        while not self._stop.is_set():
            try:
                events = self._read(start)
                if start != ">" and not events:
                    start = ">"
                    continue
                if events:
                    self.ack(*self.handle(events))
                self.tick()
                if start != ">" and events:
                    # Pending entries held back by the handler stay pending: page on past them.
                    start = events[-1].id
            except redis.RedisError as exc:
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    log.warning("events %s: consumer group missing; creating it", self.group)
                    try:
                        self.ensure_group()
                    except redis.RedisError:
                        pass
                else:
                    log.warning("events %s: redis error %s; retrying", self.group, exc)
                self._stop.wait(1.0)
            except ConnectionError as exc:  # the receiving end (a broker) is away: read what is pending again
                log.warning("events %s: %s; retrying", self.group, exc)
                start = "0"
                self._stop.wait(1.0)
            except Exception:  # a handler bug must not end publishing for good: read what is pending again
                log.exception("events %s: handler failed; retrying", self.group)
                start = "0"
                self._stop.wait(1.0)
