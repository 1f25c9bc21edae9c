"""Cloud reconstructor settings, all from the environment (prefix RECONSTRUCTOR_)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator
from pydantic_settings import SettingsConfigDict

from service_common.settings import (
    AccessSettings,
    LogSettings,
    OnnxRuntimeSettings,
    RedisSettings,
    TlsIdentitySettings,
)
from service_common.tls import TlsFiles


class ReconstructorSettings(RedisSettings, TlsIdentitySettings, AccessSettings, LogSettings, OnnxRuntimeSettings):
    model_config = SettingsConfigDict(env_prefix="RECONSTRUCTOR_")

    http_host: str = Field("127.0.0.1", description="interface the REST API listens on (0.0.0.0 in containers)")
    http_port: int = Field(8003, ge=1, le=65535, description="REST API")
    fetch_timeout_s: float = Field(5.0, gt=0, description="deadline of one Fetch call to an edge")
    fetch_retries: int = Field(2, ge=0, le=10, description="extra attempts when an edge is unavailable")
    edges: dict[str, str] = Field(
        default_factory=dict, description='edge_id -> host:port of its EnhancementStore, as JSON ({"edge-1": '
        '"edge:50052"}); the only addresses this service dials (never one from a record)'
    )
    max_edge_container_bytes: int = Field(
        1024 * 1024, ge=4096, le=64 * 1024 * 1024, description="largest container accepted from an edge's Fetch "
        "(a face's layers are tens of KB); larger ones are refused with 502, not decoded"
    )
    max_upload_bytes: int = Field(
        1024 * 1024, ge=4096, le=17 * 1024 * 1024, description="largest face file POST /v1/decode accepts (a face "
        "with all five enhancement levels is ~4 KB); larger ones are refused with 413 while they arrive"
    )
    metrics_enabled: bool = Field(True, description="serve Prometheus metrics at GET /metrics (a key with the "
                                  "metrics:read scope)")
    cors_origins: list[Annotated[str, StringConstraints(pattern=r"^https?://[^/\s?#*]+$")]] = Field(
        default_factory=list, description='origins whose pages may call this API from a browser, as JSON '
        '(["http://127.0.0.1:8002"]: the analyzer serving the console); empty: none (CORS off)'
    )
    docs_enabled: bool = Field(True, description="serve /docs and /openapi.json")
    tls_ca_file: Path | None = Field(
        None, description="PEM CA bundle of the edges' server certificates: Fetch over mutual TLS, presenting "
        "RECONSTRUCTOR_TLS_CERT_FILE"
    )

    @property
    def tls(self) -> TlsFiles | None:
        """The files of the Fetch channels to edges; None: plaintext."""
        if self.tls_cert_file is None and self.tls_key_file is None and self.tls_ca_file is None:
            return None
        return self.tls_files("tls_ca_file")

    def transport(self) -> TlsFiles | None:
        """At start: the Fetch channels' TLS files; None only with RECONSTRUCTOR_GRPC_INSECURE;
        GrpcTransportError otherwise."""
        return self.grpc_transport(self.tls, ("tls_cert_file", "tls_key_file", "tls_ca_file"))

    @model_validator(mode="after")
    def _tls_complete(self) -> ReconstructorSettings:
        """Incomplete TLS settings fail at start, not on the first connection."""
        self.tls  # noqa: B018
        return self
