"""Edge encoder settings, all from the environment (prefix EDGE_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from service_common.ids import ID_PATTERN
from service_common.settings import LogSettings, TlsIdentitySettings
from service_common.tls import TlsFiles


class EdgeSettings(TlsIdentitySettings, LogSettings):
    model_config = SettingsConfigDict(env_prefix="EDGE_")

    edge_id: str = Field("edge-1", pattern=ID_PATTERN, description="name of this edge node")
    http_host: str = Field("127.0.0.1", description="interface the REST API listens on (0.0.0.0 in containers)")
    http_port: int = Field(8001, ge=1, le=65535, description="REST API for cameras")
    grpc_host: str = Field("127.0.0.1", description="interface the EnhancementStore (and FrameIngest) gRPC "
                           "service listens on (0.0.0.0 in containers)")
    grpc_port: int = Field(50052, ge=0, le=65535, description="EnhancementStore fetch service")
    public_grpc_address: str = Field("", description="host:port the cloud uses to fetch; default 127.0.0.1:grpc_port")
    cloud_ingest_address: str = Field("127.0.0.1:50051", description="cloud analyzer's gRPC Ingest")
    data_dir: Path = Field(Path("var/edge"), description="outbox and enhancement store (SQLite)")
    codec_profile: str = Field("scalable", description="codec profile name (facecodec.codec.profiles)")
    codec_rate: int | None = Field(None, ge=0, le=255, description="base-layer rate id; default: profile's")
    enhancement_levels: int | None = Field(
        None, ge=0, le=16, description="enhancement levels a face can be viewed at (coded at capture when eager, "
        "on first view when deferred); default: all the profile has"
    )
    enhancement_coding: Literal["deferred", "eager"] = Field(
        "deferred",
        description="deferred: keep each crop (lossless WebP) and code a level when it is first fetched; "
        "eager: code every level at capture",
    )
    enhancement_max_faces: int = Field(10_000, ge=1, description="retention bound of the enhancement store")
    retention_s: float = Field(
        7 * 86400.0, gt=0, description="enhancement layers and kept crops older than this are deleted (also "
        "refused records); keep it at most the cloud's ANALYZER_RETENTION_DAYS"
    )
    retention_interval_s: float = Field(60.0, gt=0, le=86400, description="how often edge retention runs")
    enhancement_max_bytes: int = Field(512 * 1024 * 1024, ge=1024, description="retention bound in bytes")
    detect_model: Literal["libfd", "rfb"] = Field(
        "libfd", description="face detector: libfd (libfacedetection's network in onnxruntime on the frame shrunk "
        "to detect_max_side, checked by MTCNN's O-Net: ~37 ms per 1080p frame on one core) or rfb (RFB-320 "
        "over a tiled pyramid: ~43 ms, fewer faces and more false ones in crowds): bench/results/detection.json "
        "compares them"
    )
    detect_max_side: int = Field(
        1600, ge=320, le=4096, description="libfd: the frame's longer side is shrunk to this (1600: ~37 ms per "
        "1080p frame on one core; 1320: ~25 ms, fewer 40-60 px faces)"
    )
    detect_tiling: bool = Field(
        True, description="rfb: also search frames >= ~1000 px wide tile by tile for small faces (~43 ms per "
        "1080p frame)"
    )
    detect_motion_gate: bool = Field(
        True, description="search only where a camera's view changed or its tracked people are, and the whole "
        "frame every detect_refresh_s (fixed cameras; facecodec/frontend/motion.py)"
    )
    detect_refresh_s: float = Field(
        2.0, gt=0, le=60, description="motion gate: the whole frame is searched at least this often"
    )
    tracking: bool = Field(
        True, description="link each camera's faces across frames and uplink a person once (again only for a "
        "clearly better face); off: every detection is uplinked"
    )
    track_timeout_s: float = Field(2.0, gt=0, le=60, description="a track closes after this long without its face")
    workers: int = Field(
        0, ge=0, le=64, description="threads decoding, detecting and aligning frames at once (any cameras; each "
        "camera's frames are still committed in order); 0: one per CPU core"
    )
    describe_batch_faces: int = Field(
        16, ge=1, le=256, description="faces of waiting frames described in one recogniser batch"
    )
    min_face_px: float = Field(
        0.0, ge=0, le=4096, description="faces with a narrower detection box are not coded or uplinked (counted "
        "in edge_faces_withheld); 0: no bound"
    )
    min_quality: float = Field(
        0.0, ge=0, le=1, description="faces whose quality score (0-1: size, sharpness, head turn) is lower are "
        "not coded or uplinked (counted in edge_faces_withheld); 0: no bound"
    )
    cameras_file: Path | None = Field(
        None, description="per-camera settings (TOML): overflow policy reject|drop-oldest, a video stream "
        "or file the edge reads itself at a set fps, scene snapshots kept at the edge (edge_encoder/cameras.py)"
    )
    max_cameras: int = Field(
        256, ge=1, le=100_000, description="distinct camera ids this edge accepts frames from; beyond, 403"
    )
    max_frames_in_flight: int = Field(
        8, ge=1, le=1024, description="frames accepted but not yet committed; beyond it a posted frame gets 429 "
        "with Retry-After (a gRPC stream waits: flow control; a drop-oldest camera replaces its oldest waiting "
        "frame) instead of queueing without bound"
    )
    camera_auth: Literal["tokens", "off"] = Field(
        "tokens", description="tokens: a camera must present its token (Authorization: Bearer); off: any "
        "client may post frames as any camera (only behind a network that guarantees it)"
    )
    camera_tokens_file: Path | None = Field(
        None, description="camera token hashes (`python -m edge_encoder tokens add CAMERA`); default "
        "<data_dir>/camera_tokens; re-read when it changes"
    )
    metrics_enabled: bool = Field(True, description="serve Prometheus metrics at GET /metrics (admin token)")
    admin_token_file: Path | None = Field(
        None, description="file holding the bearer token for /v1/status (the detailed health), /metrics, /docs "
        "and /openapi.json; default <data_dir>/admin_token, made (mode 0600) at first start when missing"
    )
    https_cert_file: Path | None = Field(
        None, description="PEM certificate (chain) of the REST API: set with EDGE_HTTPS_KEY_FILE to serve "
        "HTTPS (camera tokens and frames cross the network); unset: plain HTTP (loopback only)"
    )
    https_key_file: Path | None = Field(None, description="PEM private key of EDGE_HTTPS_CERT_FILE")
    max_frame_streams: int = Field(
        16, ge=1, le=256, description="gRPC SubmitFrames streams open at once; beyond, RESOURCE_EXHAUSTED "
        "(Fetch and Erase keep threads of their own)"
    )
    frame_stream_idle_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="a gRPC SubmitFrames stream that sends no frame for this long is ended"
    )
    max_frame_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest accepted frame upload")
    upload_batch: int = Field(64, ge=1, le=1024, description="faces per ingest stream")
    upload_timeout_s: float = Field(10.0, gt=0, description="deadline of one ingest stream")
    upload_retry_max_s: float = Field(30.0, gt=0, description="longest back-off between upload retries")
    upload_stall_s: float = Field(
        300.0, gt=0, description="faces waiting this long with no successful upload for as long: /healthz says "
        "degraded, /readyz fails"
    )
    capture_max_future_s: float = Field(
        600.0, ge=0, description="latest accepted captured_at, seconds ahead of the edge's clock; beyond, 422"
    )
    capture_max_age_s: float = Field(
        365 * 86400.0, gt=0, description="oldest accepted captured_at, seconds before now; beyond, 422"
    )
    tls_ca_file: Path | None = Field(
        None, description="PEM CA bundle of the cloud's certificates: verifies the analyzer's server certificate "
        "and every client of the gRPC server (mutual TLS: gRPC cameras need a certificate from it too)"
    )
    cloud_names: list[str] = Field(
        ["cloud"], description="cloud certificates (role cloud, these names: spiffe://facecodec/cloud/<name>) "
        "allowed to Fetch and Erase (JSON list); any other certificate gets PERMISSION_DENIED"
    )
    cloud_server_name: str = Field(
        "", description="name the analyzer's server certificate must carry; default: the host of "
        "EDGE_CLOUD_INGEST_ADDRESS"
    )

    grpc_reflection: bool = Field(False, description="serve gRPC reflection (lists the services to any client; "
                                  "for debugging)")

    @property
    def tls(self) -> TlsFiles | None:
        """This edge's TLS files (all three, or none: plaintext)."""
        files = (self.tls_cert_file, self.tls_key_file, self.tls_ca_file)
        if all(f is None for f in files):
            return None
        if any(f is None for f in files):
            names = (self.env_name(n) for n in ("tls_cert_file", "tls_key_file", "tls_ca_file"))
            raise ValueError(f"set all of {', '.join(names)} for TLS, or none of them")
        return self.tls_files("tls_ca_file")

    def transport(self) -> TlsFiles | None:
        """At start: the TLS files; None only with EDGE_GRPC_INSECURE; GrpcTransportError otherwise."""
        return self.grpc_transport(self.tls, ("tls_cert_file", "tls_key_file", "tls_ca_file"))

    @property
    def tokens_path(self) -> Path:
        return self.camera_tokens_file or self.data_dir / "camera_tokens"

    @property
    def admin_token_path(self) -> Path:
        return self.admin_token_file or self.data_dir / "admin_token"

    @property
    def https(self) -> tuple[Path, Path] | None:
        """The REST API's certificate and key files (both, or none: plain HTTP)."""
        if self.https_cert_file is None and self.https_key_file is None:
            return None
        if self.https_cert_file is None or self.https_key_file is None:
            raise ValueError("set both EDGE_HTTPS_CERT_FILE and EDGE_HTTPS_KEY_FILE for HTTPS, or neither")
        return self.https_cert_file, self.https_key_file

    @property
    def fetch_address(self) -> str:
        return self.public_grpc_address or f"127.0.0.1:{self.grpc_port}"

    @model_validator(mode="after")
    def _tls_complete(self) -> EdgeSettings:
        """Incomplete TLS settings fail at start, not on the first connection."""
        self.tls  # noqa: B018
        self.https  # noqa: B018
        return self
