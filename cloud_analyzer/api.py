"""Cloud analyzer: gRPC Ingest for edges, recognition workers, REST for people."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

import redis
from fastapi import FastAPI

import facecodec
from cloud_analyzer.cluster_moves import finish_moves
from cloud_analyzer.clusters import Clusters
from cloud_analyzer.compaction import Compactor
from cloud_analyzer.decision import OpenSetPolicy
from cloud_analyzer.deps import Analyzer, AnalyzerDep
from cloud_analyzer.edge_eraser import EdgeEraser
from cloud_analyzer.erasure import Eraser
from cloud_analyzer.events import router as events_router
from cloud_analyzer.events import webhooks_router
from cloud_analyzer.events.channels import start_channels
from cloud_analyzer.gallery import Gallery
from cloud_analyzer.ingest_service import IngestLimits, make_server
from cloud_analyzer.key_migration import migrate_keys
from cloud_analyzer.metrics import AnalyzerMetrics
from cloud_analyzer.minors import child_policy
from cloud_analyzer.retention import Retention
from cloud_analyzer.routers import clusters as clusters_router
from cloud_analyzer.routers import (
    compreface,
    corrections,
    detect,
    edges,
    erasures,
    faces,
    history,
    identities,
    keys,
    search,
    sightings,
    templates,
    verify,
)
from cloud_analyzer.routers.console import mount_console
from cloud_analyzer.settings import AnalyzerSettings
from cloud_analyzer.store import Store
from cloud_analyzer.worker import RecognitionWorker
from facecodec.codec.profiles import codec_by_name
from facecodec.frontend import FaceFrontEnd
from service_common.access import bootstrap_admin
from service_common.access.denials import DenialFlusher
from service_common.capture_time import CaptureWindow
from service_common.gate import BodyLimits, protect
from service_common.guard import Access, build_access, require
from service_common.health import readiness
from service_common.http import harden
from service_common.prometheus import count_redis_errors, metrics_route
from service_common.redis_memory import redis_memory
from service_common.request_id import with_request_ids
from service_common.tls import Channels

log = logging.getLogger(__name__)


def make_access(client: redis.Redis, settings: AnalyzerSettings) -> Access:
    """Keys, audit and rate limits over the analyzer's Redis; the first admin key on first start."""
    access = build_access(client, settings)
    if bootstrap_admin(access.keys, settings.admin_key_file):  # where the key is, never the key
        log.warning("new admin API key written to %s (mode 0600); create narrower keys with it: "
                    "python -m cloud_analyzer keys create --help", settings.admin_key_file)
    return access


def create_app(settings: AnalyzerSettings | None = None) -> FastAPI:
    settings = settings or AnalyzerSettings()
    ingest_tls = settings.transport()  # mutual TLS, or plaintext only when asked for: checked before anything runs
    metrics = AnalyzerMetrics()  # this app's own registry: several analyzers in one process do not collide

    ingest_up = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = Store.from_url(settings.redis_url, settings.redis_timeout_s, settings.redis_password_file,
                               settings.redis_read_from_replicas, ingest_wait_replicas=settings.ingest_wait_replicas,
                               ingest_wait_timeout_ms=settings.ingest_wait_timeout_ms)
        if moved := migrate_keys(store.r):  # before anything reads or writes: the names with hash tags
            log.info("redis: %d keys of the layout before hash tags renamed", moved)
        store.ensure_group()
        if migrated := store.index_gallery():
            log.info("gallery: %d identities enrolled before vector sets indexed", migrated)
        if migrated := store.migrate():
            log.info("identities: %d given template ids and a name index entry", migrated)
        gallery = Gallery(store, ef=settings.gallery_search_ef)
        metrics.watch_redis(store.r, gallery.__len__)
        policy = OpenSetPolicy(settings.target_fpir, settings.match_threshold)
        settings.apply_ort()  # before the codec's and front end's sessions open
        codec = codec_by_name(settings.codec_profile, settings.codec_rate)
        codec.open_set_calibration  # noqa: B018  (fail at start, not on the first face, if it is missing)
        access = make_access(store.r, settings)
        app.state.access = access
        edge_channels = Channels(None if ingest_tls is None else settings.edge_tls)  # erasures go to edges over these
        edge_eraser = EdgeEraser(store.r, settings.edges, edge_channels.get)
        clusters = Clusters(store.r)
        if finished := finish_moves(clusters):  # merges a replica died in the middle of, across cluster shards
            log.info("clusters: %d cross-shard merges left half done finished", finished)
        app.state.analyzer = Analyzer(settings, store, gallery, FaceFrontEnd(), codec, policy, access,
                                      Eraser(store.r), edge_eraser, clusters)
        limits = IngestLimits(settings.ingest_max_streams, settings.ingest_max_streams_per_peer,
                              settings.ingest_idle_timeout_s,
                              CaptureWindow(settings.capture_max_future_s, settings.capture_max_age_s),
                              settings.retention_days * 86400 if settings.retention_days else None)
        server, port = make_server(store, settings.grpc_port, settings.edges, settings.grpc_host, limits=limits,
                                   tls=ingest_tls, reflection_on=settings.grpc_reflection, metrics=metrics)
        server.start()
        workers = [
            RecognitionWorker(store, gallery, f"{settings.consumer_name}-{i}", policy, settings.fusion_window_s,
                              settings.claim_idle_s, clusters, metrics, child_policy(settings))
            for i in range(settings.workers)
        ]
        for worker in workers:
            worker.start()
        edge_eraser.start()
        compactor = Compactor(store.r, settings.erasure_rewrite_interval_s)
        compactor.start()
        retention = Retention(store.r, settings.retention_days * 86400 if settings.retention_days else None,
                              settings.retention_interval_s, settings.dead_consumer_s)
        retention.start()
        denial_flusher = DenialFlusher(access.denials)
        denial_flusher.start()
        channels = start_channels(settings, store.r)  # SSE hub, webhook deliverer, MQTT publisher
        app.state.event_hub = channels.hub
        app.state.ready_checks = {
            "redis": lambda: bool(store.r.ping()),
            "models_loaded": lambda: True,  # the codec and front end are built above, before serving
            "ingest_server": lambda: ingest_up.is_set(),
            "workers": lambda: all(w.alive for w in workers),
        }
        app.state.ready_notes = {"redis_full": lambda: redis_memory(store.r).full}
        ingest_up.set()
        log.info("analyzer: ingest on :%d (%s), %d worker(s)", port,
                 "plaintext" if ingest_tls is None else "mutual TLS", len(workers))
        yield
        ingest_up.clear()
        await channels.stop()
        for worker in workers:
            worker.stop()
        edge_eraser.stop()
        compactor.stop()
        edge_channels.close()
        retention.stop()
        denial_flusher.stop()
        server.stop(grace=2).wait()
        store.r.close()

    docs = {} if settings.docs_enabled else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    app = FastAPI(title="facecodec cloud analyzer", version=facecodec.__version__, lifespan=lifespan, **docs)
    for module in (identities, templates, sightings, history, search, verify, detect, faces, keys, erasures,
                   clusters_router, corrections, edges,
                   events_router, webhooks_router):
        app.include_router(module.router)
    if settings.compreface_api:
        app.include_router(compreface.router)
        app.state.denial_bodies = {compreface.PREFIX + "/": compreface.denial_body}
    mount_console(app, settings)
    harden(app, settings.max_request_bytes, log)
    protect(app, BodyLimits(json=settings.max_json_bytes, form=settings.max_request_bytes))
    with_request_ids(app)

    count_redis_errors(app, metrics.redis_errors.labels("rest").inc)

    @app.get("/healthz")
    def healthz() -> dict:
        """Open liveness: the process answers (restart it if not). Nothing else, not even Redis: a Redis
        outage is /readyz's 503, and restarting every replica would not end it."""
        return {"status": "ok"}

    app.get("/readyz", responses={503: {"description": "not ready; Retry-After says when to ask again"}})(readiness)

    if settings.metrics_enabled:  # Prometheus scrapes with a metrics:read key (scrape_config `authorization`)
        metrics_route(app, metrics.registry)

    @app.get("/v1/health", dependencies=[require("admin")])
    def health(analyzer: AnalyzerDep) -> dict:
        """The detail, for admins: gallery size, operating point, the audit trail's state (entries the
        safety cap dropped: 0 unless audit entries were lost), and Redis's memory against its maxmemory
        (`full`: new faces are refused, the edges keep them and retry)."""
        audit = analyzer.access.audit
        memory = redis_memory(analyzer.store.r)
        return {"status": "redis_full" if memory.full else "ok", "redis_memory": memory.as_dict(),
                "identities": len(analyzer.gallery), "codec": analyzer.codec.spec.name,
                "target_fpir": analyzer.settings.target_fpir,
                "audit": {"entries": len(audit), "retention_days": audit.retention_days,
                          "max_entries": audit.max_entries, "dropped_over_cap": audit.dropped()}}

    return app
