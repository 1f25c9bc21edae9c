"""The edge's retention: enhancement layers, kept crops, scene snapshots and dead letters older than
EDGE_RETENTION_S are deleted, every `interval_s`, whatever the stores' size bounds would still allow."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.outbox import Outbox

log = logging.getLogger(__name__)


class EdgeRetention:
    def __init__(self, store: EnhancementStore, outbox: Outbox, max_age_s: float, interval_s: float = 60.0) -> None:
        self.store, self.outbox, self.max_age_s, self.interval_s = store, outbox, max_age_s, interval_s
        self.expired = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def run_once(self, now: float | None = None) -> int:
        cutoff = (now if now is not None else time.time()) - self.max_age_s
        expired = self.store.expire(cutoff) + self.outbox.expire_rejected(cutoff)
        self.expired += expired
        return expired

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if expired := self.run_once():
                    log.info("retention: %d faces older than %.0fs deleted", expired, self.max_age_s)
            except sqlite3.Error as exc:  # a full or locked disk: try again next round, loudly
                log.error("retention failed: %s", exc)
