"""TLS and mutual TLS for the gRPC links between edges and the cloud, from configured PEM files.

Each service names its own certificate and key (presented as server certificate and, when it dials,
as client certificate) and the CA that signs its peers' certificates. Unset files keep the old
plaintext behaviour (loopback development only); production sets them (docs/security.md).

What grpc-python does with client certificates (measured with grpcio 1.85.3, tests/test_tls.py):
`grpc.ssl_server_credentials(..., root_certificates=ca, require_client_auth=False)` does NOT request a
client certificate at all (gRPC core's GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE): a client that has
one does not send it, `context.auth_context()` carries no `x509_*` entries, and a certificate from
any CA "passes" because it is never looked at. Python exposes no request-but-don't-require mode.
So a server that must know who calls requires client certificates (`require_client_auth=True`:
a client with no certificate, or one from another CA, fails the handshake and sees UNAVAILABLE),
and every client of that port, cameras on the edge's FrameIngest included, needs a certificate
from the configured CA.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

ROLES = ("cloud", "edge", "camera")
ROLE_URI_PREFIX = "spiffe://facecodec/"


def role_uri(role: str, name: str) -> str:
    """The SAN URI that gives a certificate its role: spiffe://facecodec/<role>/<name>."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    return f"{ROLE_URI_PREFIX}{role}/{name}"


@dataclass(frozen=True)
class Peer:
    """Who a verified client certificate says the caller is."""

    role: str
    name: str


class TlsConfigError(ValueError):
    """A TLS file setting is incomplete, or a file is missing, unreadable or not PEM."""


@dataclass(frozen=True)
class TlsPem:
    """The PEM bytes of a TlsFiles, read once."""

    cert: bytes | None
    key: bytes | None
    ca: bytes | None


@dataclass(frozen=True)
class TlsFiles:
    """Paths of this service's certificate chain and key, and of the CA bundle its peers' certificates
    are verified against; `names` are what errors call them (the settings' environment variables)."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    names: tuple[str, str, str] = ("certificate file", "key file", "CA file")

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise TlsConfigError(f"set both {self.names[0]} and {self.names[1]}, or neither")

    @classmethod
    def optional(cls, cert: Path | None, key: Path | None, ca: Path | None,
                 names: tuple[str, str, str] = ("certificate file", "key file", "CA file")) -> TlsFiles | None:
        """None when no file is set (plaintext); the files otherwise."""
        if cert is None and key is None and ca is None:
            return None
        return cls(cert, key, ca, names)

    def read(self) -> TlsPem:
        """Every set file's bytes; TlsConfigError names the setting and the problem."""
        return TlsPem(*(None if path is None else _read_pem(path, name)
                        for path, name in zip((self.cert, self.key, self.ca), self.names, strict=True)))


def _read_pem(path: Path, name: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise TlsConfigError(f"{name} {path}: no such file") from None
    except PermissionError:
        raise TlsConfigError(f"{name} {path}: not readable by this process (uid {os.getuid()})") from None
    except IsADirectoryError:
        raise TlsConfigError(f"{name} {path}: is a directory, not a PEM file") from None
    except OSError as exc:
        raise TlsConfigError(f"{name} {path}: cannot be read ({exc.strerror})") from None
    if b"-----BEGIN " not in data:
        raise TlsConfigError(f"{name} {path}: not a PEM file (no -----BEGIN line)")
    return data


def server_credentials(files: TlsFiles, require_client_cert: bool) -> grpc.ServerCredentials:
    """TLS with this service's certificate. require_client_cert: mutual TLS, the client's certificate is
    required and verified against `files.ca` (without it grpc-python does not even ask for one)."""
    pem = files.read()
    if pem.cert is None or pem.key is None:
        raise TlsConfigError(f"a TLS server needs {files.names[0]} and {files.names[1]}")
    if require_client_cert and pem.ca is None:
        raise TlsConfigError(f"verifying client certificates needs {files.names[2]}")
    return grpc.ssl_server_credentials([(pem.key, pem.cert)], root_certificates=pem.ca if require_client_cert
                                       else None, require_client_auth=require_client_cert)


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """TLS to a server verified against `files.ca` (the system's roots when unset), presenting this
    service's certificate as client certificate when it has one."""
    pem = files.read()
    return grpc.ssl_channel_credentials(root_certificates=pem.ca, private_key=pem.key, certificate_chain=pem.cert)


def secure_or_insecure_channel(address: str, files: TlsFiles | None, server_name_override: str | None = None,
                               options: tuple[tuple[str, object], ...] = ()) -> grpc.Channel:
    """A channel to `address`: plaintext when `files` is None, else TLS (mutual when `files` has a
    certificate). The server's certificate must name the address's host (DNS or IP SAN) or, when
    given, `server_name_override` (also sent as SNI)."""
    if files is None:
        return grpc.insecure_channel(address, options=list(options))
    return secure_channel(address, channel_credentials(files), server_name_override, options)


def secure_channel(address: str, credentials: grpc.ChannelCredentials, server_name_override: str | None = None,
                   options: tuple[tuple[str, object], ...] = ()) -> grpc.Channel:
    """A TLS channel from credentials made once (channel_credentials), for clients of many addresses."""
    opts = list(options)
    if server_name_override:
        opts.append(("grpc.ssl_target_name_override", server_name_override))
    return grpc.secure_channel(address, credentials, options=opts)


class Channels:
    """One gRPC channel per address, reused (thread-safe): plaintext when `files` is None, else TLS
    verified against files.ca, presenting files.cert as client certificate (files read once, here)."""

    def __init__(self, files: TlsFiles | None) -> None:
        self._credentials = None if files is None else channel_credentials(files)
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def get(self, address: str) -> grpc.Channel:
        with self._lock:
            if address not in self._channels:
                self._channels[address] = (grpc.insecure_channel(address) if self._credentials is None
                                           else secure_channel(address, self._credentials))
            return self._channels[address]

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


def peer_identity(context: grpc.ServicerContext) -> str | None:
    """The verified client certificate's name: its subject CN, else its first DNS SAN (else its first
    SAN of any kind); None on a plaintext or server-only TLS connection (no client certificate)."""
    auth = context.auth_context()
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    for key in ("x509_common_name", "peer_dns", "x509_subject_alternative_name"):
        values = auth.get(key)
        if values:
            return values[0].decode("utf-8", "replace")
    return None


def peer_role(context: grpc.ServicerContext) -> Peer | None:
    """The role and name of the verified client certificate, from its one `spiffe://facecodec/<role>/<name>`
    SAN URI; None on plaintext, without a client certificate, or when the certificate carries no such URI
    or more than one (a certificate must not hold two roles)."""
    auth = context.auth_context()
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    uris = [v.decode("utf-8", "replace") for v in auth.get("peer_uri") or auth.get("x509_subject_alternative_name",
                                                                                    [])]
    ours = [u.removeprefix(ROLE_URI_PREFIX).split("/") for u in uris if u.startswith(ROLE_URI_PREFIX)]
    if len(ours) != 1 or len(ours[0]) != 2 or ours[0][0] not in ROLES or not ours[0][1]:
        return None
    return Peer(*ours[0])
