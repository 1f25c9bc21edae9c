"""Settings the services share, as pydantic-settings mixins: each service's settings class inherits
them and keeps its own `env_prefix`, so one field here is `ANALYZER_REDIS_URL` in the analyzer and
`RECONSTRUCTOR_REDIS_URL` in the reconstructor, with one default and one meaning."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from service_common.tls import TlsFiles

log = logging.getLogger(__name__)


class GrpcTransportError(ValueError):
    """Neither the TLS files nor the explicit plaintext switch: the service refuses to start."""


class RedisSettings(BaseSettings):
    """Where the cloud's state lives (service_common/redis_keys.py names what is in it)."""

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="the cloud's single source of truth (faces, "
                           "base layers, identities, keys, audit): `redis://host:port/db` (`rediss://` for TLS) for "
                           "one Redis, `redis+cluster://host:port,host:port` (`rediss+cluster://`) for Redis Cluster "
                           "(the hosts are seeds; same keys, docs/redis-keys.md)")
    redis_password_file: Path | None = Field(
        None, description="file holding Redis's password (a compose secret); unset: the URL's, if any"
    )
    redis_timeout_s: float = Field(5.0, gt=0, description="socket and connect timeout of each Redis call")
    redis_read_from_replicas: bool = Field(
        False, description="Redis Cluster only: reads go round-robin to each slot's replicas too (reads scale with "
        "replicas; a read may miss a write made milliseconds before, by replication lag)")


class TlsIdentitySettings(BaseSettings):
    """This service's own certificate and key for gRPC; the CA files differ by service and stay in each
    service's class. Mutual TLS is required: without the files a service starts only with the explicit
    plaintext switch (`grpc_insecure`)."""

    tls_cert_file: Path | None = Field(
        None, description="PEM certificate (chain) this service presents: its gRPC server certificate and its "
        "client certificate when it dials; peers check its role and name, the SAN URI spiffe://facecodec/<role>/"
        "<name> (an edge's name is its EDGE_EDGE_ID, the cloud's in EDGE_CLOUD_NAMES): made by `python -m "
        "service_common.certs init`"
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of this service's TLS certificate")
    grpc_insecure: bool = Field(
        False, description="plaintext gRPC without certificates: anyone reaching the ports calls them (loopback "
        "development only; warned on every start). Unset and no TLS files: the service refuses to start"
    )

    def env_name(self, field: str) -> str:
        """The environment variable of one of this class's fields (what error messages name)."""
        return f"{self.model_config.get('env_prefix', '')}{field}".upper()

    def tls_files(self, ca_field: str) -> TlsFiles:
        """This service's certificate and key with the CA file of `ca_field`, named by their variables."""
        names = ("tls_cert_file", "tls_key_file", ca_field)
        return TlsFiles(self.tls_cert_file, self.tls_key_file, getattr(self, ca_field),
                        tuple(self.env_name(n) for n in names))

    def grpc_transport(self, tls: TlsFiles | None, required: tuple[str, ...]) -> TlsFiles | None:
        """Checked at start: the TLS files when every field in `required` is set; None (plaintext, warned)
        only with grpc_insecure; GrpcTransportError otherwise, naming what to set."""
        switch = self.env_name("grpc_insecure")
        if self.grpc_insecure:
            if tls is not None:
                raise GrpcTransportError(f"{switch}=true and TLS files are both set: choose one")
            log.warning("%s=true: gRPC is PLAINTEXT and unauthenticated: anyone who reaches its ports can call "
                        "it. Loopback development only", switch)
            return None
        missing = [self.env_name(f) for f in required if getattr(self, f) is None]
        if missing or tls is None:
            raise GrpcTransportError(
                f"gRPC needs mutual TLS: set {', '.join(missing)} (make a CA and certificates with `python -m "
                f"service_common.certs init --dir DIR --edge EDGE_ID`, docs/security.md), or set {switch}=true "
                "for plaintext gRPC on loopback development")
        return tls

class AccessSettings(BaseSettings):
    """How the REST gate and the audit trail bound what clients can cost (docs/security.md)."""

    rate_limit_per_s: int = Field(100, ge=1, le=100_000, description="requests per second per API key, in any "
                                  "1 s sliding window, shared by replicas (default; a key may carry its own)")
    audit_max_entries: int = Field(10_000_000, ge=1000, description="memory guard of the audit stream: beyond "
                                   "it the oldest go, counted (analyzer GET /v1/health) and logged as errors")

    audit_retention_days: float = Field(
        365, gt=0, le=3650, description="audit entries older than this are trimmed as new ones arrive (retention by "
        "time: no volume of requests pushes a recent entry out)"
    )
    denial_budget_per_min: int = Field(
        30, ge=1, le=100_000, description="denied requests (401/403/429) one client address (IPv6: its /64) may have "
        "in any minute; beyond, it gets 429 before its key is looked up. Denials are audited as one access.denied "
        "entry per address and minute"
    )
    denial_window_s: float = Field(60.0, ge=1, le=3600, description="denials of one client are summed over "
                                   "windows this long, one access.denied audit entry each")
    max_json_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024,
                                description="largest body of a JSON endpoint (413 while it streams in)")


class LogSettings(BaseSettings):
    """How a service writes its log lines (service_common/logs.py)."""

    log_format: Literal["text", "json"] = Field(
        "text", description="text: one readable line per record (development); json: one JSON object per line "
        "with ts, level, service, logger, msg and the request_id the record belongs to (log pipelines)"
    )


class OnnxRuntimeSettings(BaseSettings):
    """onnxruntime threads of a cloud service's sessions. The cloud makes many tiny calls (a base-layer decode
    is ~0.3 ms): onnxruntime's default pool (a thread per core, spinning after each call) burned ~0.9 core in
    the analyzer for nothing; one thread that sleeps between calls costs ~10x less CPU per decode
    (bench/ort_decode_cpu.py). The edge sizes its own threads (edge_encoder/node.py)."""

    ort_threads: int = Field(1, ge=0, le=256, description="intra-op threads of each onnxruntime session "
                             "(0: onnxruntime's default, a thread per core)")
    ort_inter_threads: int = Field(1, ge=0, le=256, description="inter-op threads of each onnxruntime session "
                                   "(0: onnxruntime's default)")
    ort_spinning: bool = Field(False, description="onnxruntime threads spin waiting for work after each call "
                               "(fast for long back-to-back runs, a core burned for tiny calls)")

    def apply_ort(self) -> None:
        """Hand the thread settings to facecodec (FACECODEC_ORT_*), before any session opens: the library
        reads its settings where it opens a session."""
        import os

        os.environ["FACECODEC_ORT_THREADS"] = str(self.ort_threads)
        os.environ["FACECODEC_ORT_INTER_THREADS"] = str(self.ort_inter_threads)
        os.environ["FACECODEC_ORT_SPINNING"] = "1" if self.ort_spinning else "0"
