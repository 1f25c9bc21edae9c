"""Camera frame streams (gRPC SubmitFrames) the edge holds open: how many, and which went quiet.

Each open stream holds one of the gRPC server's threads, the same pool that serves the cloud's Fetch
and Erase. So at most `max_streams` are open at once (the server keeps threads beyond them for Fetch
and Erase: fetch_service.make_server), and a stream that sends no frame for `idle_timeout_s` is
cancelled by a watchdog thread (cancelling wakes the handler blocked on the next frame). A stream whose
frame is being processed is not idle: the camera is waiting for its ack.
"""

from __future__ import annotations

import logging
import threading
import time

import grpc

log = logging.getLogger(__name__)


class FrameStreams:
    def __init__(self, max_streams: int = 16, idle_timeout_s: float = 30.0) -> None:
        self.max_streams, self.idle_timeout_s = max_streams, idle_timeout_s
        self._lock = threading.Lock()
        # context -> when it last went back to waiting for a frame (None: a frame is being processed)
        self._open: dict[grpc.ServicerContext, float | None] = {}
        self._watchdog: threading.Thread | None = None

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)

    def open(self, context: grpc.ServicerContext) -> bool:
        """Count a new stream in; False when `max_streams` are open already."""
        with self._lock:
            if len(self._open) >= self.max_streams:
                return False
            self._open[context] = time.monotonic()
            if self._watchdog is None:  # one per edge, started with its first stream
                self._watchdog = threading.Thread(target=self._watch, name="frame-stream-watchdog", daemon=True)
                self._watchdog.start()
            return True

    def busy(self, context: grpc.ServicerContext) -> None:
        """A frame arrived: the stream is not idle until its ack is on the way."""
        with self._lock:
            if context in self._open:
                self._open[context] = None

    def waiting(self, context: grpc.ServicerContext) -> None:
        """The stream waits for its next frame from now on."""
        with self._lock:
            if context in self._open:
                self._open[context] = time.monotonic()

    def close(self, context: grpc.ServicerContext) -> None:
        with self._lock:
            self._open.pop(context, None)

    def _watch(self) -> None:
        period = min(1.0, self.idle_timeout_s / 4)
        while True:
            time.sleep(period)
            cutoff = time.monotonic() - self.idle_timeout_s
            with self._lock:
                quiet = [c for c, since in self._open.items() if since is not None and since < cutoff]
                for context in quiet:  # cancelled once; the slot is freed by the handler's close on its way out
                    self._open[context] = None
            for context in quiet:
                log.warning("frame stream from %s sent nothing for %.0f s; ended", context.peer(), self.idle_timeout_s)
                context.cancel()
