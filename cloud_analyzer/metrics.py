"""Prometheus metrics of the analyzer (`GET /metrics`, scope `metrics:read`): what comes in, how fast it is
decided, what waits, what fails.

One registry per app (`AnalyzerMetrics`), as the edge does (edge_encoder/metrics.py): tests build several
analyzers in one process and replicas run side by side. Counts of things held in Redis (stream lag and
pending, gallery, clusters, erasures pending, Redis's memory against its `maxmemory`) are read when
scraped, so every replica reports the same shared figures and none is ever stale; a scrape while Redis is
down skips them and counts the error. `analyzer_redis_full` is 1 while Redis refuses new faces (Ingest
answers the edges RESOURCE_EXHAUSTED; `analyzer_ingest_refused_full` counts those answers).

`EVENT_DELIVERIES` is process-wide (the event channels are per process, not per app) and registered in
every app's registry. The events code counts each delivery attempt with one call:

    EVENT_DELIVERIES.labels(channel, outcome).inc()   # channel: sse|webhook|mqtt; outcome: ok|failed
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from service_common.redis_keys import CLUSTER_INDEXES, ERASURES_PENDING, GROUP, INGEST_STREAMS
from service_common.redis_memory import redis_memory

log = logging.getLogger(__name__)
# 10 ms .. 60 s: a face is decided in tens of ms when workers keep up, in seconds to minutes behind a backlog.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

EVENT_DELIVERIES = Counter("analyzer_event_deliveries", "event deliveries attempted, by channel (sse, webhook, "
                           "mqtt) and outcome (ok, failed)", ["channel", "outcome"], registry=None)


class _RedisGauges(Collector):
    """Gauges read from Redis at scrape time."""

    def __init__(self, client: redis.Redis, gallery_size, redis_errors: Counter) -> None:  # type: ignore[no-untyped-def]
        self.r, self.gallery_size, self.redis_errors = client, gallery_size, redis_errors

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            yield from self._memory()
            pipe = self.r.pipeline(transaction=False)
            for stream in INGEST_STREAMS:
                pipe.xinfo_groups(stream)
            groups = [next((g for g in reply if g["name"] in (GROUP, GROUP.encode())), {})
                      for reply in pipe.execute(raise_on_error=False) if not isinstance(reply, Exception)]
            values = {
                "analyzer_stream_lag": ("faces in the ingest streams not yet read by any worker",
                                        sum(g.get("lag") or 0 for g in groups)),
                "analyzer_stream_pending": ("faces read by a worker and not yet decided (acked)",
                                            sum(g.get("pending", 0) for g in groups)),
                "analyzer_gallery_identities": ("identities enrolled", self.gallery_size()),
                "analyzer_clusters": ("anonymous clusters of unknown faces",
                                      sum(self.r.zcard(key) for key in CLUSTER_INDEXES)),
                "analyzer_erasures_pending": ("(erasure, edge) pairs not yet confirmed by their edge",
                                              self.r.scard(ERASURES_PENDING)),
            }
        except redis.ResponseError as exc:
            if "no such key" not in str(exc).lower():
                raise
            values = {}  # the stream does not exist yet: nothing ingested
        except redis.RedisError as exc:
            log.warning("metrics: redis unavailable at scrape: %s", exc)
            self.redis_errors.labels("metrics").inc()
            return
        for name, (doc, value) in values.items():
            yield GaugeMetricFamily(name, doc, value=float(value))

    def _memory(self) -> Iterator[GaugeMetricFamily]:
        memory = redis_memory(self.r)  # the fullest primary on a cluster
        for name, doc, value in (
            ("analyzer_redis_memory_used_bytes", "memory Redis counts against its maxmemory", memory.used_bytes),
            ("analyzer_redis_memory_max_bytes", "Redis's maxmemory (0: no limit)", memory.max_bytes),
            ("analyzer_redis_full", "1 while Redis is full and refuses new faces (the edges keep them and "
             "retry), else 0", int(memory.full)),
        ):
            yield GaugeMetricFamily(name, doc, value=float(value))


class AnalyzerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.faces_ingested = Counter("analyzer_faces_ingested", "face records received over Ingest, by result "
                                      "(accepted, duplicate, conflict, rejected)", ["result"], registry=r)
        self.decisions = Counter("analyzer_decisions", "recognition decisions, by outcome (recognised, unknown, "
                                 "low_quality, error)", ["outcome"], registry=r)
        self.recognition_seconds = Histogram("analyzer_recognition_seconds", "ingest to decision, per face",
                                             buckets=LATENCY_BUCKETS, registry=r)
        self.ingest_refused_full = Counter("analyzer_ingest_refused_full", "Ingest streams answered "
                                           "RESOURCE_EXHAUSTED because Redis is full (maxmemory): the edge "
                                           "keeps the faces and retries", registry=r)
        self.redis_errors = Counter("analyzer_redis_errors", "Redis calls that failed, by where (rest, worker, "
                                    "ingest, metrics)", ["where"], registry=r)
        r.register(EVENT_DELIVERIES)
        # Every known label value from the start: a dashboard shows 0, not "no data", before the first one.
        for result in ("accepted", "duplicate", "conflict", "rejected"):
            self.faces_ingested.labels(result)
        for outcome in ("recognised", "unknown", "low_quality", "error"):
            self.decisions.labels(outcome)
        for where in ("rest", "worker", "ingest", "metrics"):
            self.redis_errors.labels(where)
        for channel in ("sse", "webhook", "mqtt"):
            for outcome in ("ok", "failed"):
                EVENT_DELIVERIES.labels(channel, outcome)

    def watch_redis(self, client: redis.Redis, gallery_size) -> None:  # type: ignore[no-untyped-def]
        """Stream lag and pending, gallery size, clusters and erasures pending, read at each scrape."""
        self.registry.register(_RedisGauges(client, gallery_size, self.redis_errors))
