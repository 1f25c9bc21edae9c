"""A private CA and one certificate per service for mutual TLS on every gRPC link.

    python -m service_common.certs init --dir DIR --edge edge-1 [--edge edge-2 ...] [--cloud cloud]
                                        [--camera lobby ...] [--san HOST ...] [--ca-dir DIR] [--renew NAME ...]

makes, in DIR: `ca.crt` (the CA every service trusts), `cloud.crt/.key` (the analyzer's server certificate
and the cloud's client certificate, analyzer and reconstructor), `<edge id>.crt/.key` per edge, and
`camera-<id>.crt/.key` per gRPC camera; the CA's key goes to `ca.key` in --ca-dir (default DIR: keep it
apart from what the services read). Keys are created 0600. Idempotent: files that exist are kept (the
first start makes them, later starts change nothing); `--renew NAME` re-issues that one certificate.

Each certificate carries its role as a SAN URI, `spiffe://facecodec/<role>/<name>` (role: cloud, edge,
camera), which the servers check (service_common.tls.peer_role): an edge's certificate cannot Fetch, a
cloud certificate cannot Ingest as an edge. SANs also name 127.0.0.1, localhost and the compose service
names, so the same files serve the launcher and docker compose.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from service_common.ids import ID_RULE, is_id
from service_common.secret_files import write_private
from service_common.tls import role_uri

CA_DAYS = 3650
LEAF_DAYS = 397  # what public CAs may issue at most; renew yearly
# Hosts every certificate names: the launcher dials 127.0.0.1; compose dials its service names.
DEFAULT_HOSTS = ("127.0.0.1", "localhost", "cloud_analyzer", "cloud_reconstructor", "edge_encoder")


class CertError(ValueError):
    """A name is not a valid id, or existing files do not belong together."""


@dataclass(frozen=True)
class Leaf:
    role: str
    name: str

    @property
    def stem(self) -> str:
        """File name without suffix: the cloud and edges by name (as the launcher and docs expect)."""
        return f"camera-{self.name}" if self.role == "camera" else self.name


def _crypto():  # type: ignore[no-untyped-def]
    """cryptography, imported only by the commands that make certificates (the services never do)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def _load_or_make_ca(ca_dir: Path, out_dir: Path):  # type: ignore[no-untyped-def]
    x509, hashes, serialization, ec, _, name_oid = _crypto()
    key_file, cert_file = ca_dir / "ca.key", out_dir / "ca.crt"
    if key_file.exists() and cert_file.exists():
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            raise CertError(f"{cert_file} is not the certificate of {key_file}")
        return key, cert, False
    if key_file.exists() or cert_file.exists():
        raise CertError(f"found only one of {key_file} and {cert_file}: restore the other or remove both")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(name_oid.COMMON_NAME, "facecodec fleet CA")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    write_private(key_file, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, True


def _issue(ca_key, ca_cert, leaf: Leaf, hosts: Iterable[str]):  # type: ignore[no-untyped-def]
    x509, hashes, serialization, ec, eku, name_oid = _crypto()
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans: list = [x509.UniformResourceIdentifier(role_uri(leaf.role, leaf.name)), x509.DNSName(leaf.name)]
    for host in dict.fromkeys(hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(name_oid.COMMON_NAME, leaf.name),
                                     x509.NameAttribute(name_oid.ORGANIZATIONAL_UNIT_NAME, leaf.role)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([eku.SERVER_AUTH, eku.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def _signed_by(cert_file: Path, ca_cert) -> bool:  # type: ignore[no-untyped-def]
    from cryptography.exceptions import InvalidSignature

    x509 = _crypto()[0]
    try:
        x509.load_pem_x509_certificate(cert_file.read_bytes()).verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def init(out_dir: Path, edges: Iterable[str], clouds: Iterable[str] = ("cloud",), cameras: Iterable[str] = (),
         hosts: Iterable[str] = (), ca_dir: Path | None = None, renew: Iterable[str] = ()) -> list[Path]:
    """Make whatever of the CA and the certificates is missing; returns the files written. A kept
    certificate that another CA signed is an error (a half-rotated folder), not silently mixed."""
    leaves = [Leaf("cloud", n) for n in clouds] + [Leaf("edge", n) for n in edges] + \
        [Leaf("camera", n) for n in cameras]
    for leaf in leaves:
        if not is_id(leaf.name):
            raise CertError(f"{leaf.role} name {leaf.name!r} must be {ID_RULE}")
    stems = [leaf.stem for leaf in leaves]
    if len(set(stems)) != len(stems) or "ca" in stems:
        raise CertError(f"names must be distinct and not 'ca': {stems}")
    renew = set(renew)
    if unknown := renew - {leaf.name for leaf in leaves} - set(stems):
        raise CertError(f"--renew {sorted(unknown)}: not among the certificates named")
    ca_dir = ca_dir or out_dir
    for d in (out_dir, ca_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key, ca_cert, made_ca = _load_or_make_ca(ca_dir, out_dir)
    written = [out_dir / "ca.crt", ca_dir / "ca.key"] if made_ca else []
    hosts = (*DEFAULT_HOSTS, *hosts)
    for leaf in leaves:
        cert_file, key_file = out_dir / f"{leaf.stem}.crt", out_dir / f"{leaf.stem}.key"
        if cert_file.exists() and key_file.exists() and not ({leaf.name, leaf.stem} & renew):
            if not _signed_by(cert_file, ca_cert):
                raise CertError(f"{cert_file} was not issued by {out_dir / 'ca.crt'}: renew it (--renew "
                                f"{leaf.stem}) or remove it")
            continue
        cert, key = _issue(ca_key, ca_cert, leaf, hosts)
        write_private(key_file, key)  # the key first: a certificate never sits beside a key it does not match
        cert_file.write_bytes(cert)
        written += [cert_file, key_file]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service_common.certs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init", help="make the CA and the certificates that are missing (keeps existing files)")
    p.add_argument("--dir", type=Path, required=True, help="where ca.crt and the certificates and keys go")
    p.add_argument("--ca-dir", type=Path, help="where the CA's key goes (default --dir); keep it off the services")
    p.add_argument("--edge", action="append", default=[], help="an edge id (= its EDGE_EDGE_ID); repeat")
    p.add_argument("--cloud", action="append", help="a cloud certificate name (default: cloud)")
    p.add_argument("--camera", action="append", default=[], help="a gRPC camera's id; repeat")
    p.add_argument("--san", action="append", default=[], help="another host name or IP every certificate names")
    p.add_argument("--renew", action="append", default=[], help="re-issue this certificate (name); repeat")
    args = parser.parse_args(argv)
    try:
        written = init(args.dir, args.edge, args.cloud or ["cloud"], args.camera, args.san, args.ca_dir, args.renew)
    except CertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    if not written:
        print(f"{args.dir}: every certificate already there; nothing written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
