"""Video sources: the edge reads a camera's stream (RTSP, HTTP) or a video file itself, with PyAV, and
feeds frames sampled at the camera's `fps` to the same stages as posted frames.

A live stream is read as fast as it arrives and sampled by the frames' timestamps; a file is played in
real time, as a camera would deliver it. A stream that fails or ends (live) is opened again after a
back-off of 1 s doubling to `retry_max_s`. Frames the edge cannot take (saturated, with the camera's
overflow `reject`) are skipped and counted: a live source cannot wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime

import numpy as np

from edge_encoder.cameras import CameraConfig
from edge_encoder.metrics import EdgeMetrics
from edge_encoder.pipeline import FrameResult
from edge_encoder.redact import redact_url, scrub
from edge_encoder.stages import Saturated

log = logging.getLogger(__name__)
Submit = Callable[[str, np.ndarray, datetime], Future[FrameResult]]
LIVE_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")


class VideoSource:
    def __init__(self, camera_id: str, config: CameraConfig, submit: Submit, metrics: EdgeMetrics,
                 retry_max_s: float = 30.0, open_timeout_s: float = 10.0) -> None:
        assert config.source, "a VideoSource needs a source"
        self.camera_id, self.config, self.submit, self.metrics = camera_id, config, submit, metrics
        self.retry_max_s, self.open_timeout_s = retry_max_s, open_timeout_s
        self.live = config.source.lower().startswith(LIVE_SCHEMES)
        self.state = "starting"  # playing | reconnecting | ended | stopped
        self.frames_sampled = self.frames_skipped = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"source-{camera_id}", daemon=True)

    def start(self) -> VideoSource:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        self.state = "stopped"

    def health(self) -> dict:
        return {"source": redact_url(self.config.source or ""), "fps": self.config.fps, "state": self.state,
                "frames_sampled": self.frames_sampled, "frames_skipped": self.frames_skipped,
                "last_error": self.last_error}

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                played = self._play()
            except Exception as exc:  # noqa: BLE001 - PyAV raises many kinds; the source must live on
                played = 0
                # FFmpeg's messages quote the URL: credentials out before the text is kept or logged.
                self.last_error = scrub(f"{type(exc).__name__}: {exc}", self.config.source or "")[:300]
                self.metrics.source_errors.labels(self.camera_id).inc()
                log.warning("camera %s: video source failed (%s); retrying in %.0f s", self.camera_id,
                            self.last_error, backoff)
            else:
                if not self.live and not self.config.loop:
                    self.state = "ended"
                    return
            if played:
                backoff = 1.0
            self.state = "reconnecting"
            if self._stop.wait(backoff):
                return
            backoff = min(2 * backoff, self.retry_max_s)

    def _play(self) -> int:
        """Open the source and sample it until it ends or the source is stopped; frames sampled."""
        import av

        source = self.config.source or ""
        options = {"rtsp_transport": "tcp"} if source.lower().startswith(("rtsp://", "rtsps://")) else {}
        with av.open(source, options=options, timeout=self.open_timeout_s) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            self.state = "playing"
            period = 1.0 / self.config.fps
            start_wall, first_t, next_t, sampled = time.monotonic(), None, None, 0
            for frame in container.decode(stream):
                if self._stop.is_set():
                    break
                t = float(frame.time) if frame.time is not None else time.monotonic() - start_wall
                first_t = t if first_t is None else first_t
                if next_t is not None and t < next_t:
                    continue
                next_t = max(t, next_t or t) + period
                if not self.live:  # a file plays at its own pace, as the camera that recorded it
                    delay = start_wall + (t - first_t) - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                self._offer(frame.to_ndarray(format="rgb24"))
                sampled += 1
            return sampled

    def _offer(self, rgb: np.ndarray) -> None:
        try:
            self.submit(self.camera_id, rgb, datetime.now(UTC))
        except Saturated:
            self.frames_skipped += 1
            return
        self.frames_sampled += 1
        self.metrics.source_frames.labels(self.camera_id).inc()
