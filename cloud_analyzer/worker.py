"""Recognition workers: a Redis consumer group over the ingest stream, at-least-once, idempotent."""

from __future__ import annotations

import logging
import threading

import redis

from cloud_analyzer.gallery import Gallery
from cloud_analyzer.recognition import decide, decode_base_layer
from cloud_analyzer.store import GROUP, INGEST_STREAM, Store
from facecodec.bitstream import BitstreamError
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.profiles import UnknownProfileError

log = logging.getLogger(__name__)
CLAIM_IDLE_MS = 30_000  # a message unacked this long belonged to a worker that died: take it over


class RecognitionWorker:
    def __init__(self, store: Store, gallery: Gallery, consumer: str, threshold: float | None) -> None:
        self.store, self.gallery, self.consumer, self.threshold = store, gallery, consumer, threshold
        self.processed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"worker-{consumer}", daemon=True)

    def start(self) -> None:
        self.store.ensure_group()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def process(self, stream_id: bytes, face_id: str) -> None:
        face = self.store.face(face_id)
        if face is None:  # stored record vanished (flushed by an operator): nothing to do but ack
            self.store.r.xack(INGEST_STREAM, GROUP, stream_id)
            return
        try:
            descriptor, calibrated = decode_base_layer(face["base_layer"])
        except (BitstreamError, UnknownProfileError, BaseLayerError) as exc:
            self.store.record_result(stream_id, face, "error", None, None, None, str(exc))
            return
        threshold = calibrated if self.threshold is None else self.threshold
        match, best = decide(self.gallery, descriptor, threshold)
        if match:
            self.store.record_result(stream_id, face, "recognised", match.identity_id, match.name, match.similarity)
        else:
            self.store.record_result(stream_id, face, "unknown", None, None, best.similarity if best else None)
        self.processed += 1

    def _batches(self):
        # First anything this consumer (or a dead one) left pending, then new messages.
        _, claimed, *_ = self.store.r.xautoclaim(INGEST_STREAM, GROUP, self.consumer, CLAIM_IDLE_MS, count=64)
        if claimed:
            return claimed
        pending = self.store.r.xreadgroup(GROUP, self.consumer, {INGEST_STREAM: "0"}, count=64)
        if pending and pending[0][1]:
            return pending[0][1]
        fresh = self.store.r.xreadgroup(GROUP, self.consumer, {INGEST_STREAM: ">"}, count=64, block=1000)
        return fresh[0][1] if fresh else []

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for stream_id, fields in self._batches():
                    if not fields:  # claimed entries that were trimmed away come back empty
                        self.store.r.xack(INGEST_STREAM, GROUP, stream_id)
                        continue
                    face_id = fields[b"face_id"].decode()
                    try:
                        self.process(stream_id, face_id)
                    except redis.RedisError:
                        raise
                    except Exception as exc:  # one poison face must not block recognition for everyone
                        log.exception("worker %s: face %s failed", self.consumer, face_id)
                        self.store.mark_failed(stream_id, face_id, f"internal error: {exc}")
            except redis.RedisError as exc:
                log.warning("worker %s: redis error %s; retrying", self.consumer, exc)
                self._stop.wait(1.0)
