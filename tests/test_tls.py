"""gRPC between edges and the cloud over real TLS on loopback, with throwaway CAs: mutual TLS on the
analyzer's Ingest (certificate name = edge_id), on the edge's Fetch/Erase (only the cloud's names), and
the reconstructor's Fetch client; plaintext, certless and foreign-CA clients fail the handshake."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pydantic
import pytest
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc, ingest_pb2

from cloud_analyzer.api import create_app as create_analyzer
from cloud_analyzer.ingest_service import make_server as make_ingest_server
from cloud_analyzer.settings import AnalyzerSettings
from cloud_analyzer.store import Store
from cloud_reconstructor.edge_client import EdgeClients, EdgeFetchError
from cloud_reconstructor.settings import ReconstructorSettings
from edge_encoder.enhancement_store import EnhancementStore
from edge_encoder.fetch_service import make_server as make_fetch_server
from edge_encoder.outbox import Outbox
from edge_encoder.settings import EdgeSettings
from edge_encoder.uploader import Uploader
from facecodec.codec.profiles import codec_by_name
from service_common.redis_client import connect
from service_common.redis_keys import face_key
from service_common.settings import GrpcTransportError
from service_common.tls import TlsConfigError, TlsFiles, secure_or_insecure_channel
from tests.helpers import shards
from tests.helpers.records import valid_record
from tests.helpers.tls_certs import Authority

Ack = ingest_pb2.IngestAck


@dataclass(frozen=True)
class Pki:
    ca: Path
    edge1: TlsFiles  # edge-1's server and client certificate, CA of the cloud
    cloud: TlsFiles  # the analyzer's server certificate, the cloud's client certificate, CA of the edges
    edge2: TlsFiles  # from the right CA, another name
    stranger: TlsFiles  # named edge-1, from another CA
    certless: TlsFiles  # verifies the server, presents nothing
    roleless: TlsFiles  # from the right CA, named cloud, but with no role URI (e.g. a plain openssl certificate)
    camera: TlsFiles  # a gRPC camera's certificate (role camera)

    def client(self, files: TlsFiles) -> TlsFiles:
        return TlsFiles(files.cert, files.key, self.ca)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, other = Authority.create(d, "fleet-ca"), Authority.create(d, "other-ca")
    files = {name: TlsFiles(*ca.issue(d, name, role=role), ca.cert_file)
             for name, role in (("edge-1", "edge"), ("cloud", "cloud"), ("edge-2", "edge"), ("lobby", "camera"))}
    return Pki(ca.cert_file, files["edge-1"], files["cloud"], files["edge-2"],
               TlsFiles(*other.issue(d, "edge-1", role="edge"), ca.cert_file), TlsFiles(ca=ca.cert_file),
               TlsFiles(*ca.issue(d, "cloud", file_stem="roleless"), ca.cert_file), files["lobby"])


@pytest.fixture
def ingest(pki: Pki, redis_server, redis_client):
    """The analyzer's Ingest with mutual TLS, trusting edge-1 and edge-2; yields its address."""
    server, port = make_ingest_server(Store(connect(redis_server.url)), 0, {"edge-1", "edge-2"},
                                      tls=pki.cloud)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def upload(outbox_dir: Path, address: str, files: TlsFiles | None, edge_id: str = "edge-1",
           server_name: str | None = None) -> tuple[ingest_pb2.FaceRecord, Outbox, Uploader]:
    """One record through the edge's real Uploader (its outbox keeps what is not acked)."""
    record = valid_record()
    record.edge_id = edge_id
    outbox = Outbox(outbox_dir / f"{uuid.uuid4().hex}.sqlite3")
    outbox.put(record.face_id, record.SerializeToString())
    return record, outbox, Uploader(outbox, address, 8, 5.0, 1.0, tls=files, server_name=server_name)


def test_an_edge_with_its_certificate_ingests_over_mutual_tls(pki, ingest, redis_client, tmp_path) -> None:
    record, outbox, uploader = upload(tmp_path, ingest, pki.edge1)
    try:
        assert uploader.upload_once() == 1
    finally:
        uploader.channel.close()
    assert len(outbox) == 0 and outbox.rejected_count() == 0
    assert redis_client.hget(face_key(record.face_id), "edge_id") == b"edge-1"


def test_the_analyzer_certificate_may_be_checked_for_a_configured_name(pki, ingest, redis_client,
                                                                         tmp_path) -> None:
    """EDGE_CLOUD_SERVER_NAME: the analyzer's certificate is checked for that name, not the dialled host."""
    record, _, uploader = upload(tmp_path, ingest, pki.edge1, server_name="cloud")
    try:
        assert uploader.upload_once() == 1
    finally:
        uploader.channel.close()
    assert redis_client.exists(face_key(record.face_id))
    _, _, wrong = upload(tmp_path, ingest, pki.edge1, server_name="not-the-cloud")
    try:
        with pytest.raises(grpc.RpcError) as refused:
            wrong.upload_once()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        wrong.channel.close()


@pytest.mark.parametrize("client", ["certless", "stranger", "plaintext"])
def test_clients_without_a_certificate_from_the_ca_cannot_ingest(pki, ingest, redis_client, tmp_path,
                                                                 client) -> None:
    files = None if client == "plaintext" else getattr(pki, client)
    record, outbox, uploader = upload(tmp_path, ingest, files)
    try:
        with pytest.raises(grpc.RpcError) as refused:
            uploader.upload_once()
    finally:
        uploader.channel.close()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake fails
    assert len(outbox) == 1 and not redis_client.exists(face_key(record.face_id))


@pytest.mark.parametrize("client", ["edge2", "cloud", "camera", "roleless"])
def test_a_certificate_of_another_name_cannot_ingest_as_an_edge(pki, ingest, redis_client, tmp_path,
                                                               client) -> None:
    """edge-2 (a trusted edge) cannot send edge-1's records; the cloud's and a camera's certificates are no
    edge at all, nor one without a role.
    PERMISSION_DENIED, nothing stored, nothing REJECTED: the edge keeps the records."""
    record, outbox, uploader = upload(tmp_path, ingest, getattr(pki, client))
    try:
        with pytest.raises(grpc.RpcError) as refused:
            uploader.upload_once()
    finally:
        uploader.channel.close()
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert len(outbox) == 1 and outbox.rejected_count() == 0
    assert not redis_client.exists(face_key(record.face_id))
    assert shards.ingest_len(redis_client) == 0


def test_server_only_tls_keeps_the_edge_id_check(pki, redis_server, redis_client, tmp_path) -> None:
    """Certificate and key without a client CA: TLS, no client certificates, ANALYZER_EDGES still applies."""
    server, port = make_ingest_server(Store(connect(redis_server.url)), 0, {"edge-1"},
                                      tls=TlsFiles(pki.cloud.cert, pki.cloud.key))
    server.start()
    try:
        record, _, uploader = upload(tmp_path, f"127.0.0.1:{port}", pki.certless)
        _, _, untrusted = upload(tmp_path, f"127.0.0.1:{port}", pki.certless, edge_id="edge-9")
        try:
            assert uploader.upload_once() == 1
            with pytest.raises(grpc.RpcError) as refused:
                untrusted.upload_once()
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        finally:
            uploader.channel.close()
            untrusted.channel.close()
        assert redis_client.exists(face_key(record.face_id))
    finally:
        server.stop(0)


@pytest.fixture
def edge(pki: Pki, tmp_path: Path):
    """The edge's gRPC server (EnhancementStore) over mutual TLS, holding one face; yields (address, face_id)."""
    descriptor = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    coded = codec_by_name("baseline").encode_base(descriptor / np.linalg.norm(descriptor))
    store = EnhancementStore(tmp_path / "enhancement.sqlite3", 100, 1 << 20)
    face_id = uuid.uuid4().hex
    store.put(face_id, coded.base_only().to_bytes(), 0)
    server, port = make_fetch_server(store, 0, tls=pki.edge1, callers=["cloud"])
    server.start()
    yield f"127.0.0.1:{port}", face_id
    server.stop(0)
    store.close()


def _call(address: str, files: TlsFiles | None, rpc: str, face_id: str) -> grpc.StatusCode:
    with secure_or_insecure_channel(address, files) as channel:
        stub = enhancement_pb2_grpc.EnhancementStoreStub(channel)
        try:
            if rpc == "Fetch":
                stub.Fetch(enhancement_pb2.FetchRequest(face_id=face_id), timeout=5)
            else:
                stub.Erase(enhancement_pb2.EraseRequest(face_ids=[face_id], erasure_id="t"), timeout=5)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("rpc", ["Fetch", "Erase"])
def test_the_edge_answers_fetch_and_erase_only_to_the_cloud(pki, edge, rpc) -> None:
    address, face_id = edge
    assert _call(address, pki.client(pki.edge2), rpc, face_id) == grpc.StatusCode.PERMISSION_DENIED
    assert _call(address, pki.client(pki.edge1), rpc, face_id) == grpc.StatusCode.PERMISSION_DENIED
    assert _call(address, pki.client(pki.camera), rpc, face_id) == grpc.StatusCode.PERMISSION_DENIED
    assert _call(address, pki.client(pki.roleless), rpc, face_id) == grpc.StatusCode.PERMISSION_DENIED
    assert _call(address, pki.certless, rpc, face_id) == grpc.StatusCode.UNAVAILABLE
    assert _call(address, pki.stranger, rpc, face_id) == grpc.StatusCode.UNAVAILABLE
    assert _call(address, None, rpc, face_id) == grpc.StatusCode.UNAVAILABLE
    assert _call(address, pki.client(pki.cloud), "Fetch", face_id) == grpc.StatusCode.OK  # nothing erased yet


def test_the_analyzer_erases_at_an_edge_with_its_edge_channel_settings(pki, edge) -> None:
    address, face_id = edge
    settings = AnalyzerSettings(tls_cert_file=pki.cloud.cert, tls_key_file=pki.cloud.key, edge_tls_ca_file=pki.ca)
    with secure_or_insecure_channel(address, settings.edge_tls) as channel:
        erased = enhancement_pb2_grpc.EnhancementStoreStub(channel).Erase(
            enhancement_pb2.EraseRequest(face_ids=[face_id], erasure_id="t"), timeout=5)
    assert (erased.erased, erased.not_held) == (1, 0)
    assert _call(address, pki.client(pki.cloud), "Fetch", face_id) == grpc.StatusCode.NOT_FOUND


def test_the_reconstructor_fetches_over_tls_with_its_certificate(pki, edge) -> None:
    address, face_id = edge
    settings = ReconstructorSettings(tls_cert_file=pki.cloud.cert, tls_key_file=pki.cloud.key, tls_ca_file=pki.ca)
    clients = EdgeClients(5.0, 0, settings.tls)
    try:
        assert clients.fetch(address, face_id, 0).startswith(b"FC")
    finally:
        clients.close()
    intruder = EdgeClients(5.0, 0, pki.client(pki.edge2))
    try:
        with pytest.raises(EdgeFetchError) as refused:
            intruder.fetch(address, face_id, 0)
        assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    finally:
        intruder.close()


def test_tls_file_errors_are_clear(pki, tmp_path) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    names = ("X_CERT", "X_KEY", "X_CA")
    with pytest.raises(TlsConfigError, match="X_CERT .*missing.crt: no such file"):
        TlsFiles(tmp_path / "missing.crt", pki.cloud.key, names=names).read()
    with pytest.raises(TlsConfigError, match="X_KEY .*not a PEM file"):
        TlsFiles(pki.cloud.cert, not_pem, names=names).read()
    with pytest.raises(TlsConfigError, match="X_CA .*is a directory"):
        TlsFiles(ca=tmp_path, names=names).read()
    with pytest.raises(TlsConfigError, match="set both X_CERT and X_KEY"):
        TlsFiles(pki.cloud.cert, None, names=names)
    with pytest.raises(TlsConfigError, match="no such file"):  # at start, before anything listens
        make_ingest_server(None, 0, {"edge-1"}, tls=TlsFiles(tmp_path / "gone.crt", pki.cloud.key))


def test_incomplete_tls_settings_fail_at_start(pki) -> None:
    with pytest.raises(pydantic.ValidationError, match="EDGE_TLS_CERT_FILE, EDGE_TLS_KEY_FILE, EDGE_TLS_CA_FILE"):
        EdgeSettings(tls_cert_file=pki.edge1.cert, tls_key_file=pki.edge1.key)
    with pytest.raises(pydantic.ValidationError, match="ANALYZER_TLS_CLIENT_CA_FILE needs"):
        AnalyzerSettings(tls_client_ca_file=pki.ca)
    with pytest.raises(pydantic.ValidationError, match="RECONSTRUCTOR_TLS_CERT_FILE and RECONSTRUCTOR_TLS_KEY"):
        ReconstructorSettings(tls_cert_file=pki.cloud.cert)
    assert EdgeSettings().tls is None and AnalyzerSettings().ingest_tls is None and ReconstructorSettings().tls is None
    edge = EdgeSettings(tls_cert_file=pki.edge1.cert, tls_key_file=pki.edge1.key, tls_ca_file=pki.ca)
    assert edge.tls == TlsFiles(pki.edge1.cert, pki.edge1.key, pki.ca, edge.tls.names)
    assert edge.cloud_names == ["cloud"]


def test_no_certificates_and_no_plaintext_switch_refuse_to_start(pki, caplog) -> None:
    """Plaintext gRPC is never the silent default: neither TLS files nor *_GRPC_INSECURE is an error that
    says what to set; the switch gives plaintext with a warning; server-only TLS on Ingest is not enough."""
    for settings in (EdgeSettings(), AnalyzerSettings(), ReconstructorSettings(),
                     AnalyzerSettings(tls_cert_file=pki.cloud.cert, tls_key_file=pki.cloud.key)):
        with pytest.raises(GrpcTransportError, match=r"needs mutual TLS: set .*service_common.certs init.*"
                           r"_GRPC_INSECURE=true"):
            settings.transport()
    with caplog.at_level("WARNING"):
        assert AnalyzerSettings(grpc_insecure=True).transport() is None
    assert "ANALYZER_GRPC_INSECURE=true: gRPC is PLAINTEXT" in caplog.text
    with pytest.raises(GrpcTransportError, match="both set"):
        EdgeSettings(grpc_insecure=True, tls_cert_file=pki.edge1.cert, tls_key_file=pki.edge1.key,
                     tls_ca_file=pki.ca).transport()
    analyzer = AnalyzerSettings(tls_cert_file=pki.cloud.cert, tls_key_file=pki.cloud.key, tls_client_ca_file=pki.ca)
    assert analyzer.transport().ca == analyzer.edge_tls.ca == pki.ca  # the edges' CA defaults to the client CA
    with pytest.raises(GrpcTransportError):
        create_analyzer(AnalyzerSettings())  # before anything is started


def test_only_camera_certificates_submit_frames(pki, tmp_path) -> None:
    """FrameIngest over mutual TLS: the cloud's and the edges' certificates from the same CA are refused."""
    from facecoding.v1 import frames_pb2, frames_pb2_grpc

    from edge_encoder.frame_service import FrameIngestService
    from edge_encoder.metrics import EdgeMetrics

    store = EnhancementStore(tmp_path / "enhancement.sqlite3", 100, 1 << 20)
    frames = FrameIngestService(lambda *a: None, EdgeMetrics(), 1024, None, camera_certificates=True)
    server, port = make_fetch_server(store, 0, tls=pki.edge1, frames=frames)
    server.start()
    try:
        for client, expected in ((pki.cloud, "PERMISSION_DENIED"), (pki.edge2, "PERMISSION_DENIED"),
                                 (pki.roleless, "PERMISSION_DENIED"), (pki.camera, "INVALID")):
            with secure_or_insecure_channel(f"127.0.0.1:{port}", pki.client(client)) as channel:
                try:
                    acks = list(frames_pb2_grpc.FrameIngestStub(channel).SubmitFrames(
                        iter([frames_pb2.Frame(camera_id="lobby")]), timeout=5))
                    got = frames_pb2.FrameAck.Status.Name(acks[0].status)
                except grpc.RpcError as exc:
                    got = exc.code().name
            assert got == expected, client  # the camera gets through to the frame check (no image: INVALID)
        with pytest.raises(ValueError, match="camera_certificates"):
            make_fetch_server(store, 0, tls=pki.edge1, frames=FrameIngestService(lambda *a: None, EdgeMetrics(),
                                                                                 1024, None))
    finally:
        server.stop(0)
        store.close()


def test_grpc_python_does_not_ask_for_a_client_certificate_it_does_not_require(pki) -> None:
    """The measurement behind service_common.tls's design: require_client_auth=False with root certificates
    requests no client certificate, so a server learns no name (and any CA "passes"); only
    require_client_auth=True yields a verified name. If grpc ever changes this, revisit FrameIngest."""
    from concurrent import futures

    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from service_common.tls import peer_identity

    seen: list[str | None] = []

    class Health(health.HealthServicer):
        def Check(self, request, context):  # noqa: N802
            seen.append(peer_identity(context))
            return super().Check(request, context)

    pem = pki.edge1.read()
    for require in (False, True):
        server = grpc.server(futures.ThreadPoolExecutor(2))
        health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
            [(pem.key, pem.cert)], root_certificates=pem.ca, require_client_auth=require))
        server.start()
        try:
            for client in (pki.client(pki.cloud), pki.stranger):
                with secure_or_insecure_channel(f"127.0.0.1:{port}", client) as channel:
                    try:
                        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                    except grpc.RpcError as exc:
                        seen.append(exc.code().name)
        finally:
            server.stop(0)
    assert seen == [None, None, "cloud", "UNAVAILABLE"]


def test_the_launcher_passes_tls_files_to_every_service(tmp_path, monkeypatch) -> None:
    """Stack(tls_dir=...) sets each service's TLS settings; plaintext only with insecure_grpc, which sets
    each service's explicit switch."""
    from devstack.stack import SERVICE_MODULES, Stack

    ca = Authority.create(tmp_path / "tls", "ca")
    for name, role in (("cloud", "cloud"), ("edge-1", "edge")):
        ca.issue(tmp_path / "tls", name, file_stem=name, role=role)
    ports = {name: 1 for name in SERVICE_MODULES}
    plain = Stack(tmp_path / "plain", insecure_grpc=True).service_envs(2, 3, ports)
    assert not any("TLS" in k for env in plain.values() for k in env)
    assert all(sum(k.endswith("_GRPC_INSECURE") and v == "true" for k, v in env.items()) == 1
               for env in plain.values())
    envs = Stack(tmp_path / "stack", tls_dir=tmp_path / "tls").service_envs(2, 3, ports)
    settings = {"cloud_analyzer": AnalyzerSettings, "cloud_reconstructor": ReconstructorSettings,
                "edge_encoder": EdgeSettings}
    loaded = {}
    for name, cls in settings.items():
        with monkeypatch.context() as m:
            for k, v in envs[name].items():
                if k.startswith(("EDGE_", "ANALYZER_", "RECONSTRUCTOR_")):
                    m.setenv(k, v)
            loaded[name] = cls()
    analyzer = loaded["cloud_analyzer"]
    assert analyzer.ingest_tls.ca == analyzer.edge_tls.ca == tmp_path / "tls" / "ca.crt"
    assert loaded["cloud_reconstructor"].tls.cert == tmp_path / "tls" / "cloud.crt"
    assert loaded["edge_encoder"].tls.cert == tmp_path / "tls" / "edge-1.crt"
    for files in (analyzer.ingest_tls, analyzer.edge_tls, loaded["cloud_reconstructor"].tls,
                  loaded["edge_encoder"].tls):
        files.read()  # all there and PEM


def test_certs_init_makes_role_certificates_once_and_renews_on_request(tmp_path) -> None:
    """`python -m service_common.certs init`: a CA, the cloud's, each edge's and each camera's certificate
    with its role URI; idempotent (a second run writes nothing); --renew re-issues one; a certificate from
    another CA in the folder is an error, not silently kept."""
    from cryptography import x509

    from service_common import certs
    from service_common.tls import role_uri

    out, ca = tmp_path / "tls", tmp_path / "ca"
    assert certs.main(["init", "--dir", str(out), "--ca-dir", str(ca), "--edge", "edge-1", "--camera", "lobby"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "camera-lobby.crt", "camera-lobby.key", "cloud.crt",
                                                     "cloud.key", "edge-1.crt", "edge-1.key"]
    assert [p.name for p in ca.iterdir()] == ["ca.key"]
    for stem, role, name in (("cloud", "cloud", "cloud"), ("edge-1", "edge", "edge-1"), ("camera-lobby", "camera",
                                                                                            "lobby")):
        cert = x509.load_pem_x509_certificate((out / f"{stem}.crt").read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [role_uri(role, name)]
        assert "cloud_analyzer" in sans.get_values_for_type(x509.DNSName)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert certs.init(out, ["edge-1"], cameras=["lobby"], ca_dir=ca) == []
    assert certs.init(out, ["edge-1"], ca_dir=ca, renew=["edge-1"]) == [out / "edge-1.crt", out / "edge-1.key"]
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert [n for n in before if before[n] != after[n]] == ["edge-1.crt", "edge-1.key"]
    other = Authority.create(tmp_path / "other", "other-ca")
    other.issue(out, "edge-2", file_stem="edge-2", role="edge")
    with pytest.raises(certs.CertError, match="edge-2.crt was not issued by"):
        certs.init(out, ["edge-1", "edge-2"], ca_dir=ca)
    assert certs.main(["init", "--dir", str(out), "--edge", "bad id"]) == 2


def test_secret_files_are_created_private_not_chmod_ed_afterwards(tmp_path, monkeypatch, redis_client) -> None:
    """Camera tokens, the admin key and certificate keys are 0600 from creation: with chmod unavailable
    (a file written with the umask and fixed afterwards would stay world-readable) they still are."""
    import os

    from service_common import certs
    from service_common.access import KeyStore, bootstrap_admin
    from service_common.access.camera_tokens import add_camera, revoke_camera

    def no_chmod(*args, **kwargs):
        raise AssertionError("secret files must be created 0600, not chmod-ed")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)
    old = os.umask(0o022)
    try:
        tokens = tmp_path / "camera_tokens"
        add_camera(tokens, "lobby")
        add_camera(tokens, "door")
        revoke_camera(tokens, "door")
        bootstrap_admin(KeyStore(redis_client), tmp_path / "admin_key")
        certs.init(tmp_path / "tls", ["edge-1"], ca_dir=tmp_path / "ca")
    finally:
        os.umask(old)
    private = [tokens, tmp_path / "admin_key", tmp_path / "ca" / "ca.key", *(tmp_path / "tls").glob("*.key")]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in private} == {p.name: "0o600" for p in private}
