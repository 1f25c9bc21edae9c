"""Settings the services share, as pydantic-settings mixins: each service's settings class inherits
them and keeps its own `env_prefix`, so one field here is `ANALYZER_REDIS_URL` in the analyzer and
`RECONSTRUCTOR_REDIS_URL` in the reconstructor, with one default and one meaning."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from service_common.tls import TlsFiles


class RedisSettings(BaseSettings):
    """Where the cloud's state lives (service_common/redis_keys.py names what is in it)."""

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="the cloud's single source of truth (faces, "
                           "base layers, identities, keys, audit)")
    redis_password_file: Path | None = Field(
        None, description="file holding Redis's password (a compose secret); unset: the URL's, if any"
    )
    redis_timeout_s: float = Field(5.0, gt=0, description="socket and connect timeout of each Redis call")


class TlsIdentitySettings(BaseSettings):
    """This service's own certificate and key for gRPC; the CA files differ by service and stay in each
    service's class. Unset: plaintext gRPC (loopback development only; production sets every TLS file)."""

    tls_cert_file: Path | None = Field(
        None, description="PEM certificate (chain) this service presents: its gRPC server certificate and its "
        "client certificate when it dials (its name, CN else first DNS SAN, is what peers check: an edge's is "
        "its EDGE_EDGE_ID, the cloud's in EDGE_CLOUD_NAMES); unset: plaintext gRPC (loopback development only; "
        "production sets all TLS files)"
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of this service's TLS certificate")

    def env_name(self, field: str) -> str:
        """The environment variable of one of this class's fields (what error messages name)."""
        return f"{self.model_config.get('env_prefix', '')}{field}".upper()

    def tls_files(self, ca_field: str) -> TlsFiles:
        """This service's certificate and key with the CA file of `ca_field`, named by their variables."""
        names = ("tls_cert_file", "tls_key_file", ca_field)
        return TlsFiles(self.tls_cert_file, self.tls_key_file, getattr(self, ca_field),
                        tuple(self.env_name(n) for n in names))
