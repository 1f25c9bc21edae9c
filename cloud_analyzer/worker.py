"""Recognition workers: a Redis consumer group over each face shard's ingest stream, at-least-once,
idempotent. A worker reads every shard in one pipelined, non-blocking pass (Redis Cluster sends each node
its shards' reads at once), and waits a little when all are empty."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np
import redis

from cloud_analyzer.clusters import Clusters
from cloud_analyzer.decision import OpenSetPolicy
from cloud_analyzer.fusion import Fusion
from cloud_analyzer.gallery import Gallery
from cloud_analyzer.metrics import AnalyzerMetrics
from cloud_analyzer.minors import ChildPolicy
from cloud_analyzer.recognition import decode_base_layer
from cloud_analyzer.store import Outcome, Store
from facecodec.bitstream import BitstreamError
from facecodec.codec.base_layer import BaseLayerError
from facecodec.codec.profiles import UnknownProfileError
from facecodec.openset import identity_template, quality_band
from service_common import request_id
from service_common.redis_keys import GROUP, INGEST_STREAMS, ingest_stream_of

log = logging.getLogger(__name__)
_FETCH = object()  # `process` reads the face itself
CHUNK = 16  # faces of a batch fetched in one round trip: a face erased meanwhile is caught when it is recorded
CLAIM_IDLE_S = 30.0  # default: a face unacked this long belonged to a worker that died: take it over
# After a pass that found nothing the worker waits, doubling from the first wait up to the last: a busy
# worker reads again at once, an idle one polls its shards ten times a second (the most it adds to a face's
# latency), not in a tight loop. No blocking read: one XREADGROUP cannot wait on streams of several slots.
IDLE_WAIT_S = (0.005, 0.1)
# Entries one pass reads, over all shards together: a pass must be decided well within CLAIM_IDLE_S, or
# another worker claims its tail and decides those faces again (64 per shard x 16 shards was 1,024 entries,
# 20-25 s of decisions on a 2-core machine: 6-9% of faces were decided twice under a backlog).
PASS_ENTRIES = 64
READ_COUNT = max(1, -(-PASS_ENTRIES // len(INGEST_STREAMS)))  # entries per shard per pass


class RecognitionWorker:
    def __init__(self, store: Store, gallery: Gallery, consumer: str, policy: OpenSetPolicy,
                 fusion_window_s: float = 0.0, claim_idle_s: float = CLAIM_IDLE_S,
                 clusters: Clusters | None = None, metrics: AnalyzerMetrics | None = None,
                 children: ChildPolicy | None = None) -> None:
        self.store, self.gallery, self.consumer, self.policy = store, gallery, consumer, policy
        self.children = children or ChildPolicy()  # faces that look like a child's (minors.py)
        self.metrics = metrics or AnalyzerMetrics()
        self.clusters = clusters  # unknown faces grouped into anonymous clusters (None: not clustered)
        self.fusion = Fusion(store.r, fusion_window_s)
        self.claim_idle_ms = int(claim_idle_s * 1000)
        self.processed = 0
        self._own_pending = True  # first its own entries left pending by a previous run of this consumer
        self._next_claim = 0.0
        self._idle_wait = IDLE_WAIT_S[0]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"worker-{consumer}", daemon=True)

    def start(self) -> None:
        self.store.ensure_group()
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Its thread runs (readiness: a worker that died decides nothing)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _record(self, stream_id: bytes, face: dict, outcome: Outcome, *more) -> None:  # type: ignore[no-untyped-def]
        """Record the decision, and count it: by outcome, and the time from ingest to now."""
        self.store.record_result(stream_id, face, outcome, *more, fusion_ttl_ms=self.fusion.ttl_ms)
        self.metrics.decisions.labels(outcome.status).inc()
        if ingested_ms := face.get("ingested_at_ms"):
            self.metrics.recognition_seconds.observe(max(0.0, time.time() - int(ingested_ms) / 1000))

    def process(self, stream_id: bytes, face_id: str, face: Any = _FETCH) -> None:
        """Decide one queued face; `face`: its record when the batch fetched it already (None: missing)."""
        if face is _FETCH:
            face = self.store.face(face_id)
        with request_id.bound(request_id.valid((face or {}).get("request_id"))):  # the edge's call, in the logs
            self._process(stream_id, face_id, face)

    def _process(self, stream_id: bytes, face_id: str, face: dict | None) -> None:
        if face is None:  # stored record vanished (flushed by an operator): nothing to do but ack
            self.store.r.xack(ingest_stream_of(face_id), GROUP, stream_id)
            return
        try:
            descriptor, codec = decode_base_layer(face["base_layer"])
        except (BitstreamError, UnknownProfileError, BaseLayerError) as exc:
            self._record(stream_id, face, Outcome("error", error=str(exc)))
            return
        if face.get("quality_issues"):  # the edge judged it too small, blurred or turned away
            self._record(stream_id, face, Outcome("low_quality"), descriptor,
                                     codec.spec.descriptor_model)
            self.processed += 1
            return
        calibration = codec.open_set_calibration
        same_person = self.fusion.same_person_nearby(face, descriptor, codec)
        probe = identity_template(np.stack([descriptor, *same_person]))
        decision, _ = self.policy.decide(self.gallery, probe, codec.spec.descriptor_model, calibration,
                                         probe_frames=1 + len(same_person),
                                         band=quality_band(float(face["quality_score"]) if face.get("quality_score")
                                                           else None))
        decision, child = self.children.decide(decision, probe, codec.spec.descriptor_model)
        best = decision.best
        outcome = Outcome(
            "recognised" if decision.match else "unknown",
            identity_id=decision.match.identity_id if decision.match else None,
            identity_name=decision.match.name if decision.match else None,
            similarity=best.similarity if best else None, threshold=decision.threshold, fpir=decision.fpir,
            gallery_size=decision.gallery_size, fused_faces=decision.probe_frames,
            threshold_override=decision.threshold_override, negative_similarity=decision.negative_similarity,
            rejected_by_negative=decision.rejected_by_negative, looks_child=child.looks_child,
            child_probability=child.child_probability, child_withheld=child.child_withheld,
            fpir_upper=decision.fpir_upper, calibration_caveats=decision.calibration_caveats,
        )
        # --- unknown-face clusters: never fail recognition. Assigned before the decision is recorded so
        # that its event names the cluster; assign is idempotent, so a worker dying in between is harmless.
        if outcome.status == "unknown" and self.clusters is not None:
            try:
                cluster_id = self.clusters.assign(face, descriptor, codec.spec.descriptor_model, calibration)
                outcome = replace(outcome, cluster_id=cluster_id)
            except Exception:
                log.exception("worker %s: clustering face %s failed; it stays unclustered",
                              self.consumer, face["face_id"])
        # --- end unknown-face clusters ---
        self._record(stream_id, face, outcome, descriptor, codec.spec.descriptor_model)
        self.processed += 1

    def _batches(self) -> list[tuple[str, bytes, dict]]:
        """(stream, entry id, fields) to decide: first anything this consumer left pending (at start) or a
        dead one left (claimed every few seconds), then new entries, each an all-shards pipelined pass."""
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + max(self.claim_idle_ms / 4000, 0.05)
            if found := self._pass(lambda pipe, stream: pipe.xautoclaim(
                    stream, GROUP, self.consumer, self.claim_idle_ms, count=READ_COUNT), claimed=True):
                return found
        if self._own_pending:
            found = self._pass(lambda pipe, stream: pipe.xreadgroup(GROUP, self.consumer, {stream: "0"},
                                                                    count=READ_COUNT))
            if found:
                return found
            self._own_pending = False
        found = self._pass(lambda pipe, stream: pipe.xreadgroup(GROUP, self.consumer, {stream: ">"},
                                                                count=READ_COUNT))
        if found:
            self._idle_wait = IDLE_WAIT_S[0]
        else:
            self._stop.wait(self._idle_wait)
            self._idle_wait = min(self._idle_wait * 2, IDLE_WAIT_S[1])
        return found

    def _pass(self, read, claimed: bool = False) -> list[tuple[str, bytes, dict]]:  # type: ignore[no-untyped-def]
        pipe = self.store.r.pipeline(transaction=False)
        for stream in INGEST_STREAMS:
            read(pipe, stream)
        found = []
        for stream, reply in zip(INGEST_STREAMS, pipe.execute()):
            entries = (reply[1] if claimed else (reply[0][1] if reply else [])) or []
            found += [(stream, entry_id, fields) for entry_id, fields in entries]
        return sorted(found, key=_arrival)  # one worker decides in the order faces arrived, whatever their shard

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._batches()
                # Claimed entries that were trimmed away come back empty: acked together.
                for stream, entry_id, fields in batch:
                    if not fields:
                        self.store.r.xack(stream, GROUP, entry_id)
                entries = [(entry_id, fields[b"face_id"].decode()) for _, entry_id, fields in batch if fields]
                for start in range(0, len(entries), CHUNK):
                    chunk = entries[start : start + CHUNK]
                    for (stream_id, face_id), face in zip(chunk, self.store.faces([f for _, f in chunk])):
                        self._process_safely(stream_id, face_id, face)
            except redis.RedisError as exc:
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    # The stream or group is gone (Redis flushed, or restarted without its data): make it
                    # again rather than poll a group that will never exist.
                    log.warning("worker %s: consumer group missing; creating it", self.consumer)
                    self._recreate_group()
                    continue
                log.warning("worker %s: redis error %s; retrying", self.consumer, exc)
                self.metrics.redis_errors.labels("worker").inc()
                self._stop.wait(1.0)

    def _process_safely(self, stream_id: bytes, face_id: str, face: dict | None) -> None:
        try:
            self.process(stream_id, face_id, face)
        except redis.RedisError:
            raise
        except Exception:  # one poison face must not block recognition for everyone
            log.exception("worker %s: face %s failed", self.consumer, face_id)
            self.store.mark_failed(stream_id, face_id, "internal error; see the analyzer's log")

    def _recreate_group(self) -> None:
        try:
            self.store.ensure_group()
        except redis.RedisError as exc:
            log.warning("worker %s: cannot create the consumer group: %s", self.consumer, exc)
            self._stop.wait(1.0)


def _arrival(entry: tuple[str, bytes, dict]) -> tuple[int, int, int]:
    """When the ingesting analyzer stored the face (ns), then the entry's id: the order faces arrived in."""
    _, entry_id, fields = entry
    ms, _, seq = entry_id.decode().partition("-")
    return int((fields or {}).get(b"at") or 0), int(ms), int(seq or 0)
