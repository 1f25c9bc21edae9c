"""Prometheus metrics of the edge (`GET /metrics`): what comes in, what goes out, where the time goes.

One registry per node (not prometheus-client's global one), so several nodes in one process (tests)
do not collide. Backlogs and store sizes are read when scraped, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

STAGES = ("decode", "detect_align", "describe", "track", "code", "store")
# 1 ms .. 10 s: a stage on this 2-core CPU takes from ~0.1 ms (tracking) to seconds (a 4K frame decode).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Backlogs(Collector):
    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, value in self.read().items():
            yield GaugeMetricFamily(f"edge_{name}", name.replace("_", " "), value=value)


class EdgeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("edge_frames", "frames received", ["camera"], registry=r)
        self.frames_rejected = Counter("edge_frames_rejected", "frames refused", ["reason"], registry=r)
        self.faces_detected = Counter("edge_faces_detected", "faces found in frames", ["camera"], registry=r)
        self.faces_uplinked = Counter("edge_faces_uplinked", "faces coded and queued for the cloud "
                                      "(new people and clearly better faces)", ["camera"], registry=r)
        self.faces_gated = Counter("edge_faces_gated", "uplinked faces failing a quality check (sent, "
                                   "never matched)", ["camera", "issue"], registry=r)
        self.faces_withheld = Counter("edge_faces_withheld", "faces detected but not coded or uplinked: "
                                      "below a gate (EDGE_MIN_FACE_PX, EDGE_MIN_QUALITY) or a tracked person's "
                                      "face that is no better", ["camera", "reason"], registry=r)
        self.frames_dropped = Counter("edge_frames_dropped", "frames replaced by a newer frame of their camera "
                                      "before they were started (overflow: drop-oldest)", ["camera"], registry=r)
        self.describe_batch_faces = Histogram("edge_describe_batch_faces", "faces described in one batch",
                                              buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.detect_searched_share = Histogram("edge_detect_searched_share", "share of each frame's area the "
                                               "detector searched (motion gate: 1 = whole frame)",
                                               buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0), registry=r)
        self.frame_seconds = Histogram("edge_frame_seconds", "admission to committed and stored, per frame",
                                       buckets=BUCKETS, registry=r)
        self.tracks_closed = Counter("edge_tracks_closed", "tracks ended (person out of view) and reported to "
                                     "the cloud", ["camera"], registry=r)
        self.source_frames = Counter("edge_source_frames", "frames sampled from cameras' video sources",
                                     ["camera"], registry=r)
        self.source_errors = Counter("edge_source_errors", "video sources that failed to open or broke off",
                                     ["camera"], registry=r)
        self.uplink_bytes = Counter("edge_uplink_bytes", "base-only container bytes queued", registry=r)
        self.fetches = Counter("edge_enhancement_fetches", "enhancement fetches served",
                               ["coded_now"], registry=r)
        self.snapshot_fetches = Counter("edge_snapshot_fetches", "scene snapshots served", registry=r)
        self.faces_erased = Counter("edge_faces_erased", "faces erased on the cloud's request", registry=r)
        self.stage_seconds = Histogram("edge_stage_seconds", "time per frame in each stage (describe: per "
                                       "batch)", ["stage"], buckets=BUCKETS, registry=r)
        self.fetch_seconds = Histogram("edge_fetch_seconds", "time to serve one enhancement fetch",
                                       buckets=BUCKETS, registry=r)

    def watch(self, read: Callable[[], dict[str, float]]) -> None:
        """Gauges read at scrape time, e.g. {"outbox_pending": 3, ...}."""
        self.registry.register(_Backlogs(read))

    def stage(self, name: str):  # type: ignore[no-untyped-def]
        return self.stage_seconds.labels(name).time()
