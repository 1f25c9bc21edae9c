"""Cloud analyzer settings, all from the environment (prefix ANALYZER_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from cloud_analyzer.events.settings import EventsSettings
from service_common.ids import ID_PATTERN
from service_common.settings import (
    AccessSettings,
    LogSettings,
    OnnxRuntimeSettings,
    RedisSettings,
    TlsIdentitySettings,
)
from service_common.tls import TlsFiles

# The console's static files when ANALYZER_CONSOLE_DIR is unset: the repository's console/ folder.
CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"


class AnalyzerSettings(RedisSettings, TlsIdentitySettings, AccessSettings, EventsSettings, LogSettings,
                       OnnxRuntimeSettings):
    model_config = SettingsConfigDict(env_prefix="ANALYZER_")

    http_host: str = Field("127.0.0.1", description="interface the REST API listens on (0.0.0.0 in containers)")
    http_port: int = Field(8002, ge=1, le=65535, description="REST API")
    grpc_host: str = Field("127.0.0.1", description="interface the Ingest service listens on (0.0.0.0 in containers)")
    grpc_port: int = Field(50051, ge=0, le=65535, description="Ingest service for edges")
    edges: dict[str, str] = Field(
        default_factory=dict, description='trusted edges, edge_id -> host:port of its EnhancementStore, as JSON '
        '({"edge-1": "edge:50052"}); Ingest refuses any other edge, erasures are sent to these addresses'
    )
    codec_profile: str = Field("scalable", description="profile used to make enrolment templates")
    codec_rate: int | None = Field(None, ge=0, le=255, description="rate id for enrolment templates")
    target_fpir: float = Field(
        0.01, gt=0, le=0.5,
        description="share of never-enrolled people the analyzer may name as someone; sets the threshold",
    )
    match_threshold: float | None = Field(
        None, ge=-1, le=1,
        description="fixed cosine instead of target_fpir (its FPIR is then reported, not targeted)",
    )
    verify_far: float = Field(
        1e-3, ge=1e-6, le=0.1, description="1:1 verification (POST /v1/verify): the share of pairs of two "
        "different people that may be accepted as one; sets its threshold from the codec's calibration"
    )
    compreface_api: bool = Field(
        True, description="serve the CompreFace-compatible API under /api/v1 (x-api-key: one of our API keys)")
    compreface_calculator: bool = Field(
        False, description="CompreFace API: honour face_plugins=calculator (each face's descriptor, the decoded "
        "base layer, in the answer): off, since a descriptor is biometric data that outlives the photo")
    compreface_match_similarity: float = Field(
        0.6, gt=0, lt=1, description="CompreFace API: the `similarity` our decision threshold maps to (Double "
        "Take's default match confidence: 60)")
    compreface_unknown_similarity: float = Field(
        0.4, gt=0, lt=1, description="CompreFace API: the `similarity` of the cosine strangers reach 10 times as "
        "often (Double Take's default unknown confidence: 40); below compreface_match_similarity")
    fusion_window_s: float = Field(
        3.0, ge=0, le=60,
        description="fuse a face with the same person's faces from one camera this close in time (0: off)",
    )
    child_policy: Literal["withhold", "strict", "off"] = Field(
        "withhold", description="a face the child-look probe flags (cloud_analyzer/minors.py): `withhold` names "
        "nobody and refuses it as an enrolment photo; `strict` names only at child_threshold and warns on "
        "enrolment; `off` decides children like adults (the recogniser confuses children: README, Children)")
    child_threshold: float = Field(
        0.58, gt=0, le=1, description="child_policy=strict: the cosine a flagged face must reach to be named "
        "(where stricter than the gallery's threshold)")
    child_flag_at: float | None = Field(
        None, ge=0, le=1, description="the child-look probe's P(age < 13) at which a face is flagged; unset: the "
        "probe's own (2% of training adults flagged; README, Children). Lower flags more children and more adults")
    gallery_search_ef: int = Field(
        800, ge=1, le=10_000, description="how far a gallery search explores the vector sets' graph (VSIM EF, "
        "each of FACECODEC_GALLERY_SHARDS shards its share): higher finds the nearest identity more often and "
        "costs Redis more CPU; 800: recall@1 0.998 at 100k random templates (cloud_analyzer/gallery.py, "
        "bench/gallery_ef.py)")
    workers: int = Field(1, ge=0, le=16, description="recognition worker threads (0: ingest only)")
    consumer_name: str = Field(
        "analyzer-1", pattern=ID_PATTERN,
        description="this replica's name in the ingest consumer group: unique per replica",
    )
    claim_idle_s: float = Field(
        30.0, gt=0, le=3600, description="a face another replica took but has not decided for this long is "
        "taken over (that replica died)"
    )
    admin_key_file: Path | None = Field(
        None, description="file holding the admin API key (a compose secret); created (mode 0600) with a new key if "
        "missing. Unset: the analyzer refuses to start on a Redis that holds no API key yet (it never prints one)"
    )
    metrics_enabled: bool = Field(True, description="serve Prometheus metrics at GET /metrics (a key with the "
                                  "metrics:read scope)")
    docs_enabled: bool = Field(True, description="serve /docs and /openapi.json (they list endpoints, not data)")
    console_enabled: bool = Field(True, description="serve the web console at /console/ (static files; every "
                                  "call it makes is to the public REST API with the user's key)")
    console_dir: Path | None = Field(None, description="folder of the console's static files; unset: console/ "
                                     "beside the services' code (the container image has it at /opt/console)")
    console_reconstructor_url: str | None = Field(
        None, pattern=r"^https?://[^\s/?#]+/?$", description="the reconstructor's URL as a browser reaches it "
        "(e.g. http://127.0.0.1:8003), told to the console for face pixels; that reconstructor must list the "
        "console's origin in RECONSTRUCTOR_CORS_ORIGINS. Unset: the console shows no pixels"
    )
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest accepted image upload")
    max_request_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="largest request body (an enrolment of up to 32 photos); "
        "enforced while it streams in, 413 beyond"
    )
    ingest_max_streams: int = Field(
        32, ge=2, le=1024, description="gRPC calls served at once (one thread each); beyond, refused with "
        "RESOURCE_EXHAUSTED instead of queued"
    )
    ingest_max_streams_per_peer: int = Field(
        4, ge=1, le=1024, description="Ingest streams one client host may hold open at once"
    )
    ingest_idle_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="an Ingest stream that sends no record for this long is ended"
    )
    ingest_wait_replicas: int = Field(
        1, ge=0, le=16, description="Redis Cluster only: a face is acknowledged to its edge once this many replicas "
        "of its primary have it too (WAIT; at most as many as the primary has), so a primary's failover loses no "
        "acknowledged face; 0: acknowledged once the primary has it"
    )
    ingest_wait_timeout_ms: int = Field(
        500, ge=1, le=60_000, description="longest wait for those replicas; past it the face is acknowledged anyway "
        "(a replica down or lagging), with a warning"
    )
    capture_max_future_s: float = Field(
        600.0, ge=0, description="a record captured further ahead of the analyzer's clock is REJECTED"
    )
    capture_max_age_s: float = Field(
        365 * 86400.0, gt=0, description="a record captured longer ago is REJECTED"
    )
    retention_days: float | None = Field(
        30.0, gt=0, le=36500, description="faces and sightings older than this are forgotten, events too "
        "(None: kept for ever); edges expire their pixels by EDGE_RETENTION_S"
    )
    retention_interval_s: float = Field(60.0, gt=0, le=86400, description="how often retention runs")
    dead_consumer_s: float = Field(
        3600.0, gt=0, description="ingest consumers idle this long and holding nothing are removed from the group"
    )
    erasure_rewrite_interval_s: float = Field(
        60.0, ge=1, le=86400, description="after an erasure Redis rewrites its append-only file (and RDB "
        "snapshot, if configured) without the erased data: at most once per this many seconds, so erased "
        "bytes stay in its files at most about this long"
    )
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle of the edges' certificates: Ingest requires a client certificate from it "
        "with the edge role whose name (spiffe://facecodec/edge/<edge_id>) is in ANALYZER_EDGES and is every "
        "record's edge_id (mutual TLS)"
    )
    edge_tls_ca_file: Path | None = Field(
        None, description="PEM CA bundle of the edges' server certificates; the analyzer dials edges over TLS "
        "with it, presenting ANALYZER_TLS_CERT_FILE as client certificate; default ANALYZER_TLS_CLIENT_CA_FILE"
    )
    grpc_reflection: bool = Field(False, description="serve gRPC reflection on Ingest (lists its services to "
                                  "any client; for debugging)")

    @property
    def ingest_tls(self) -> TlsFiles | None:
        """The Ingest server's TLS files; None: plaintext."""
        if self.tls_cert_file is None and self.tls_key_file is None:
            if self.tls_client_ca_file is not None:
                raise ValueError(f"{self.env_name('tls_client_ca_file')} needs {self.env_name('tls_cert_file')} "
                                 f"and {self.env_name('tls_key_file')}")
            return None
        return self.tls_files("tls_client_ca_file")

    @property
    def edge_tls(self) -> TlsFiles | None:
        """The files of the analyzer's channels to edges (service_common.tls.Channels);
        None: plaintext."""
        ca = self.edge_tls_ca_file or self.tls_client_ca_file
        if ca is None:
            return None
        names = tuple(self.env_name(n) for n in ("tls_cert_file", "tls_key_file",
                                                 "edge_tls_ca_file" if self.edge_tls_ca_file else "tls_client_ca_file"))
        return TlsFiles(self.tls_cert_file, self.tls_key_file, ca, names)

    def transport(self) -> TlsFiles | None:
        """At start: Ingest's TLS files (mutual: the client CA is required); None only with
        ANALYZER_GRPC_INSECURE; GrpcTransportError otherwise."""
        return self.grpc_transport(self.ingest_tls, ("tls_cert_file", "tls_key_file", "tls_client_ca_file"))

    @model_validator(mode="after")
    def _similarity_order(self) -> AnalyzerSettings:
        if self.compreface_unknown_similarity >= self.compreface_match_similarity:
            raise ValueError("compreface_unknown_similarity must be below compreface_match_similarity")
        return self

    @model_validator(mode="after")
    def _tls_complete(self) -> AnalyzerSettings:
        """Incomplete TLS settings fail at start, not on the first connection."""
        self.ingest_tls  # noqa: B018
        self.edge_tls  # noqa: B018
        return self
