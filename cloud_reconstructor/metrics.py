"""Prometheus metrics of the reconstructor (`GET /metrics`, scope `metrics:read`): views by layers, fetches
from edges (time and failures, by edge), Redis errors. One registry per app, as the edge and the analyzer
do, so several reconstructors in one test process do not collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# 5 ms .. 10 s: a fetch of a stored layer takes milliseconds, one coded on demand (deferred) ~100 ms, a
# dead edge the whole deadline times the retries.
FETCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ReconstructorMetrics:
    def __init__(self, edges: tuple[str, ...] = ()) -> None:
        """`edges`: the configured edge ids, whose series exist (at 0) from the start."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.views = Counter("reconstructor_views", "images served, by layers: base, full (a stored face with its "
                             "edge's layers), snapshot (a scene snapshot), file_base and file_full (an uploaded "
                             ".fcb), compare (a level beside JPEG and WebP at its size)", ["layers"], registry=r)
        self.fetch_seconds = Histogram("reconstructor_fetch_seconds", "one Fetch or FetchSnapshot from an edge, "
                                       "retries included, by edge", ["edge"], buckets=FETCH_BUCKETS, registry=r)
        self.fetch_failures = Counter("reconstructor_fetch_failures", "fetches from an edge that failed, by edge "
                                      "and gRPC status", ["edge", "code"], registry=r)
        self.redis_errors = Counter("reconstructor_redis_errors", "requests that failed on Redis", registry=r)
        for layers in ("base", "full", "snapshot", "file_base", "file_full", "compare"):
            self.views.labels(layers)
        for edge in edges:
            self.fetch_seconds.labels(edge)
