"""The launcher's defaults are secure, checked against the running processes: every gRPC port speaks
mutual TLS only and checks the caller's role, reflection is off, Redis asks for a password, every
secret file is 0600, the admin key is in a file and never in a log; a service with neither
certificates nor the plaintext switch refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import redis
from facecoding.v1 import enhancement_pb2, enhancement_pb2_grpc, ingest_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bench.security_checks import Probe, edge_rest
from devstack.stack import Stack, free_port, service_env
from service_common import certs
from service_common.redis_client import connect
from service_common.redis_keys import API_KEYS
from service_common.tls import TlsFiles, secure_or_insecure_channel
from tests.helpers.records import valid_record
from tests.helpers.tls_certs import Authority

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with Stack(tmp_path_factory.mktemp("stack")) as running:  # the launcher's defaults, nothing more
        yield running


def grpc_port(stack: Stack, service: str) -> str:
    env = stack.services[service].env
    return env["ANALYZER_GRPC_PORT"] if service == "cloud_analyzer" else env["EDGE_GRPC_PORT"]


def fetch(channel: grpc.Channel) -> str:
    try:
        enhancement_pb2_grpc.EnhancementStoreStub(channel).Fetch(enhancement_pb2.FetchRequest(face_id="f" * 32),
                                                                 timeout=10)
    except grpc.RpcError as exc:
        return exc.code().name
    return "OK"


def ingest(channel: grpc.Channel, edge_id: str = "edge-1") -> str:
    record = valid_record()
    record.edge_id = edge_id
    try:
        list(ingest_pb2_grpc.IngestStub(channel).Ingest(iter([record]), timeout=10))
    except grpc.RpcError as exc:
        return exc.code().name
    return "OK"


def test_plaintext_and_foreign_certificates_fail_the_handshake(stack: Stack, tmp_path: Path) -> None:
    """What the reporter did (a plain channel to the edge's Fetch) no longer reaches any RPC; nor does a
    certificate with the right name and role from another CA."""
    other = Authority.create(tmp_path, "other-ca")
    ca = stack.data_dir / "tls" / "ca.crt"
    foreign = {name: TlsFiles(*other.issue(tmp_path, name, role=role), ca)
               for name, role in (("cloud", "cloud"), ("edge-1", "edge"))}
    edge, analyzer = (f"127.0.0.1:{grpc_port(stack, s)}" for s in ("edge_encoder", "cloud_analyzer"))
    with grpc.insecure_channel(edge) as channel:
        assert fetch(channel) == "UNAVAILABLE"
    with grpc.insecure_channel(analyzer) as channel:
        assert ingest(channel) == "UNAVAILABLE"
    with secure_or_insecure_channel(edge, foreign["cloud"]) as channel:
        assert fetch(channel) == "UNAVAILABLE"
    with secure_or_insecure_channel(analyzer, foreign["edge-1"]) as channel:
        assert ingest(channel) == "UNAVAILABLE"
    with stack.grpc_channel("edge_encoder", "cloud") as channel:  # the stack's own link works
        assert fetch(channel) == "NOT_FOUND"


def test_each_rpc_takes_only_its_role(stack: Stack, tmp_path: Path) -> None:
    """Certificates from the stack's own CA, wrong role or name: a cloud certificate cannot Ingest as an
    edge, an edge cannot Fetch from an edge (another's or its own), a camera can do neither, and an edge
    cannot send records in another edge's name."""
    issued = tmp_path / "issued"  # the stack's CA issues a second edge and reads nothing of this folder
    issued.mkdir()
    (issued / "ca.crt").write_bytes((stack.data_dir / "tls" / "ca.crt").read_bytes())
    certs.init(issued, edges=["edge-2"], clouds=[], ca_dir=stack.secrets_dir)
    edge2 = TlsFiles(issued / "edge-2.crt", issued / "edge-2.key", issued / "ca.crt")
    with stack.grpc_channel("cloud_analyzer", "cloud") as channel:
        assert ingest(channel, "edge-1") == "PERMISSION_DENIED"
    with stack.grpc_channel("cloud_analyzer", "camera-dev") as channel:
        assert ingest(channel, "edge-1") == "PERMISSION_DENIED"
    with stack.grpc_channel("cloud_analyzer", "edge-1") as channel:
        assert ingest(channel, "edge-2") == "PERMISSION_DENIED"  # edge-1 speaking for edge-2
    with secure_or_insecure_channel(f"127.0.0.1:{grpc_port(stack, 'cloud_analyzer')}", edge2) as channel:
        assert ingest(channel, "edge-2") == "PERMISSION_DENIED"  # a valid edge, not one ANALYZER_EDGES trusts
    with secure_or_insecure_channel(f"127.0.0.1:{grpc_port(stack, 'edge_encoder')}", edge2) as channel:
        assert fetch(channel) == "PERMISSION_DENIED"  # another edge's pixels
    for identity in ("edge-1", "camera-dev"):
        with stack.grpc_channel("edge_encoder", identity) as channel:
            assert fetch(channel) == "PERMISSION_DENIED", identity
    with stack.grpc_channel("cloud_analyzer", "edge-1") as channel:
        assert ingest(channel, "edge-1") == "OK"  # the edge's own link


def test_reflection_is_off(stack: Stack) -> None:
    for service, identity in (("edge_encoder", "cloud"), ("cloud_analyzer", "edge-1")):
        with stack.grpc_channel(service, identity) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            with pytest.raises(grpc.RpcError) as off:
                list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                               timeout=10))
            assert off.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_redis_needs_the_password_and_secrets_are_private(stack: Stack) -> None:
    with pytest.raises(redis.AuthenticationError):
        connect(stack.redis.url).ping()
    assert stack.redis.client().config_get("protected-mode") == {"protected-mode": "yes"}
    private = [*stack.secrets_dir.iterdir(), *(stack.data_dir / "tls").glob("*.key")]
    assert {p.name for p in private} >= {"redis_password", "admin_key", "camera_token", "camera_tokens", "ca.key",
                                         "cloud.key", "edge-1.key", "camera-dev.key"}
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in private} == {p.name: "0o600" for p in private}
    assert not (stack.data_dir / "tls" / "ca.key").exists()  # the CA key stays out of what services read
    logs = "".join(s.log_path.read_text(errors="replace") for s in stack.services.values())
    assert stack.admin_key not in logs and stack.redis.password not in logs
    assert "PLAINTEXT" not in logs


def test_the_security_probe_attacks_this_stack(stack: Stack, tmp_path: Path) -> None:
    """One check of bench/security_probe.py against the running stack: its machinery (an attacker's own
    loopback address, the tokens, the controls) works, and the edge's REST API refuses it."""
    entry = edge_rest(Probe(stack, tmp_path))
    assert entry.outcome == "refused", entry.measured
    assert entry.measured["codes"]["admin token"] == {p: 200 for p in ("/v1/status", "/metrics", "/docs",
                                                                          "/openapi.json")}
    assert entry.measured["codes"]["camera token"]["/v1/status"] == 401


def run_service(module: str, env: dict[str, object]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module], env=service_env(**env), capture_output=True, text=True,
                          timeout=120, cwd=os.getcwd())


@pytest.mark.parametrize("module", ["cloud_analyzer", "cloud_reconstructor", "edge_encoder"])
def test_a_service_without_certificates_or_the_plaintext_switch_refuses_to_start(module: str) -> None:
    done = run_service(module, {})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "gRPC needs mutual TLS" in done.stderr and "_GRPC_INSECURE=true" in done.stderr


def test_without_a_key_file_the_analyzer_refuses_rather_than_print_a_key(redis_server, redis_client) -> None:
    done = run_service("cloud_analyzer", {"ANALYZER_REDIS_URL": redis_server.url, "ANALYZER_GRPC_INSECURE": "true",
                                          "ANALYZER_GRPC_PORT": 0, "ANALYZER_HTTP_PORT": free_port()})
    assert done.returncode != 0
    assert "set ANALYZER_ADMIN_KEY_FILE" in done.stdout + done.stderr
    assert "fck_" not in done.stdout + done.stderr
    assert "PLAINTEXT" in done.stderr  # the plaintext switch is warned about on every start
    assert redis_client.zcard(API_KEYS) == 0
