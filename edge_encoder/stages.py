"""Frames through the edge's stages at once: bounded queues, a worker pool, micro-batches, camera order.

    submit --(admission: at most `max_in_flight` frames)--> waiting frames
      --> analyse, `workers` threads (decode, detect, landmarks/align, quality)
      --> describe queue (bounded: a full queue stalls the analysers, which stalls admission)
      --> describe, one thread: the faces of every frame waiting, in one batch (`batch_faces`)
      --> commit, in each camera's frame order (gate, track, code), then `sink` (store, outbox)

A frame's future resolves once it is committed and stored, so a camera's answer means its faces are
durable. Frames of one camera may be analysed in parallel but are committed one after another in the
order they were admitted: the tracker links each frame to the ones before it, and the outbox keeps a
camera's faces in capture order. When `max_in_flight` frames are admitted and unanswered, a new one is
refused (`Saturated`: REST answers 429 with Retry-After), waits for a slot (gRPC streams: flow control),
or, for a camera that chose `drop-oldest`, replaces that camera's oldest frame not yet started (its
future fails with `FrameDropped`; counted).

The recogniser's graph is exported with batch 1, and on this CPU one batched call is no faster than a
call per face (measured 8.5 vs 8.1 ms per face at batch 4); batches still save a thread hand-over per
frame, and a batch-capable graph on a GPU would gain from them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from edge_encoder.metrics import EdgeMetrics
from edge_encoder.pipeline import AnalysedFrame, EncodePipeline, FrameResult
from service_common import request_id

log = logging.getLogger(__name__)
Overflow = Literal["reject", "drop-oldest"]


class Saturated(RuntimeError):
    """Every slot is taken: the caller should retry after `retry_after_s`."""

    retry_after_s = 1


class FrameDropped(RuntimeError):
    """A newer frame of the same camera took this frame's place before it was started (drop-oldest)."""


class ShuttingDown(RuntimeError):
    """The edge stopped before this frame was committed."""


@dataclass(eq=False)
class _Job:
    camera_id: str
    seq: int
    frame: bytes | np.ndarray
    captured_at: datetime
    future: Future[FrameResult]
    admitted: float = field(default_factory=time.perf_counter)
    analysed: AnalysedFrame | None = None
    error: BaseException | None = None
    holds_slot: bool = True  # False once drop-oldest passed its slot to a newer frame
    # The REST call's X-Request-ID (the stage threads do not inherit the caller's context): bound again
    # while the frame is committed, so its faces' records and log lines carry it.
    request_id: str | None = field(default_factory=request_id.current)


class FrameStages:
    def __init__(self, pipeline: EncodePipeline, sink: Callable[[FrameResult], None], workers: int = 2,
                 max_in_flight: int = 8, batch_faces: int = 16, metrics: EdgeMetrics | None = None) -> None:
        self.pipeline, self.sink = pipeline, sink
        self.metrics = metrics or pipeline.metrics
        self.max_in_flight, self.batch_faces = max_in_flight, batch_faces
        self._cond = threading.Condition()  # admission: in_flight, waiting, sequence numbers
        self._in_flight = 0
        self._waiting: deque[_Job] = deque()
        self._admitted: dict[str, int] = {}  # camera -> next sequence number
        # Between analyse and describe: twice the workers, so the describer always has a batch ready
        # but a slow describer stalls the analysers instead of piling frames up.
        self._to_describe: queue.Queue[_Job] = queue.Queue(maxsize=2 * workers)
        self._order = threading.Lock()  # ready jobs and the next sequence number to commit, per camera
        self._ready: dict[str, dict[int, _Job]] = {}
        self._next_commit: dict[str, int] = {}
        self._committers: dict[str, threading.Lock] = {}
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._analyse_loop, name=f"analyse-{i}", daemon=True)
                         for i in range(workers)]
        self._threads.append(threading.Thread(target=self._describe_loop, name="describe", daemon=True))

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FrameStages:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking frames; frames not yet started fail with ShuttingDown, started ones finish."""
        with self._cond:
            self._stopping.set()
            dropped = list(self._waiting)
            self._waiting.clear()
            self._cond.notify_all()
        for job in dropped:
            job.error = ShuttingDown("the edge is stopping")
            self._complete(job)
        for thread in self._threads:
            thread.join(timeout_s)
        while True:  # an analyser may have handed over a frame after the describer left
            try:
                job = self._to_describe.get_nowait()
            except queue.Empty:
                break
            job.error = ShuttingDown("the edge is stopping")
            self._complete(job)

    # -- admission -------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def saturated(self) -> bool:
        return self._in_flight >= self.max_in_flight

    def depths(self) -> dict[str, float]:
        return {"frames_in_flight": self._in_flight, "queue_analyse": len(self._waiting),
                "queue_describe": self._to_describe.qsize()}

    def submit(self, camera_id: str, frame: bytes | np.ndarray, captured_at: datetime | None = None,
               overflow: Overflow = "reject", wait_s: float = 0.0) -> Future[FrameResult]:
        """Admit one frame. TooManyCameras for a camera beyond the edge's bound; Saturated when every
        slot stayed taken for `wait_s` seconds (and `overflow` found nothing of this camera to drop)."""
        self.pipeline.admit_camera(camera_id)
        future: Future[FrameResult] = Future()
        deadline = time.monotonic() + wait_s
        dropped = None
        with self._cond:
            while self._in_flight >= self.max_in_flight and not self._stopping.is_set():
                if overflow == "drop-oldest":
                    dropped = next((j for j in self._waiting if j.camera_id == camera_id), None)
                    if dropped is not None:
                        self._waiting.remove(dropped)
                        dropped.holds_slot = False  # its slot passes to the new frame
                        self._in_flight -= 1
                        break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Saturated(f"edge saturated: {self._in_flight} frames in flight; retry shortly")
                self._cond.wait(left)
            if self._stopping.is_set():
                raise ShuttingDown("the edge is stopping")
            seq = self._admitted.get(camera_id, 0)
            self._admitted[camera_id] = seq + 1
            self._in_flight += 1
            self._waiting.append(_Job(camera_id, seq, frame, captured_at or datetime.now(UTC), future))
            self._cond.notify()
        if dropped is not None:
            self.metrics.frames_dropped.labels(camera_id).inc()
            dropped.error = FrameDropped("a newer frame of this camera replaced it (overflow: drop-oldest)")
            self._complete(dropped)
        return future

    # -- stages ----------------------------------------------------------------------------------
    def _analyse_loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._waiting or self._stopping.is_set())
                if not self._waiting:
                    return
                job = self._waiting.popleft()
            try:
                job.analysed = self.pipeline.analyse(job.frame, job.camera_id)
            except Exception as exc:  # noqa: BLE001 - the frame's caller gets it; the worker goes on
                job.error = exc
            job.frame = b""  # the decoded pixels and bytes are no longer needed: free them early
            if job.error is None and job.analysed.faces:
                self._to_describe.put(job)
            else:
                self._complete(job)

    def _describe_loop(self) -> None:
        while not (self._stopping.is_set() and self._to_describe.empty()):
            try:
                batch = [self._to_describe.get(timeout=0.2)]
            except queue.Empty:
                continue
            faces = len(batch[0].analysed.faces)
            while faces < self.batch_faces:
                try:
                    batch.append(self._to_describe.get_nowait())
                except queue.Empty:
                    break
                faces += len(batch[-1].analysed.faces)
            self.metrics.describe_batch_faces.observe(faces)
            try:
                descriptors = self.pipeline.describe(np.stack([f.crop for j in batch for f in j.analysed.faces]))
            except Exception as exc:  # noqa: BLE001
                for job in batch:
                    job.error = exc
            else:
                start = 0
                for job in batch:
                    job.analysed.descriptors = descriptors[start : start + len(job.analysed.faces)]
                    start += len(job.analysed.faces)
            for job in batch:
                self._complete(job)

    def _complete(self, job: _Job) -> None:
        """Hand a finished (or failed) job to its camera's commit order, and commit whatever is next
        in that order. Any thread may call this; one commits per camera at a time."""
        camera = job.camera_id
        with self._order:
            self._ready.setdefault(camera, {})[job.seq] = job
            committer = self._committers.setdefault(camera, threading.Lock())
        with committer:
            while True:
                with self._order:
                    nxt = self._ready[camera].pop(self._next_commit.get(camera, 0), None)
                    if nxt is None:
                        return
                    self._next_commit[camera] = nxt.seq + 1
                self._commit(nxt)

    def _commit(self, job: _Job) -> None:
        try:
            if job.error is not None:
                raise job.error
            with request_id.bound(job.request_id):
                result = self.pipeline.commit(job.camera_id, job.captured_at, job.analysed)
                self.sink(result)
        except BaseException as exc:  # noqa: BLE001 - delivered to the frame's caller
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)
            self.metrics.frame_seconds.observe(time.perf_counter() - job.admitted)
        finally:
            job.analysed = None
            if job.holds_slot:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()
