"""The edge's REST side, secure by default: an open /healthz that says only ok or degraded; the
detailed status, /metrics and the API docs behind the admin token; HTTPS from EDGE_HTTPS_* files,
checked with a real HTTPS request from a client that trusts a throwaway CA (a real edge process)."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pydantic
import pytest

from devstack.stack import free_port, service_env
from edge_encoder.admin import load_admin_token
from edge_encoder.api import create_app
from edge_encoder.settings import EdgeSettings
from service_common.access.camera_tokens import add_camera
from tests.helpers import lfw_image
from tests.helpers.servers import serve
from tests.helpers.tls_certs import Authority

JPEG = {"content-type": "image/jpeg"}
GUARDED = ("/v1/status", "/metrics", "/docs", "/openapi.json")


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("edge")
    settings = EdgeSettings(http_port=free_port(), grpc_port=free_port(), data_dir=data_dir, edge_id="edge-secret",
                            cloud_ingest_address=f"127.0.0.1:{free_port()}", grpc_insecure=True)
    camera = add_camera(settings.tokens_path, "cam-secret")
    with serve(create_app(settings)) as url:
        r = httpx.post(f"{url}/v1/cameras/cam-secret/frames", content=lfw_image("Colin_Powell", 1).read_bytes(),
                       headers={**JPEG, "authorization": f"Bearer {camera}"}, timeout=60)
        assert r.status_code == 201, r.text
        yield url, settings, camera


def test_the_open_health_says_only_ok_or_degraded(edge) -> None:
    url, _, _ = edge
    r = httpx.get(f"{url}/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    for leak in ("cam-secret", "edge-secret", "tracks_open", "onnxruntime", "error"):
        assert leak not in r.text


@pytest.mark.parametrize("path", GUARDED)
def test_details_metrics_and_docs_need_the_admin_token(edge, path: str) -> None:
    url, settings, camera = edge
    for headers in ({}, {"authorization": "Bearer fea_wrong-token-of-enough-length-000000"},
                    {"authorization": f"Bearer {camera}"},  # a camera's token reads nothing
                    {"authorization": f"Basic {load_admin_token(settings.admin_token_path)}"}):
        r = httpx.get(f"{url}{path}", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (path, headers, r.status_code)
        assert "cam-secret" not in r.text and "edge-secret" not in r.text
    r = httpx.get(f"{url}{path}", headers={"authorization": f"Bearer {load_admin_token(settings.admin_token_path)}"})
    assert r.status_code == 200, (path, r.text)


def test_the_admin_token_shows_everything_health_used_to(edge) -> None:
    url, settings, _ = edge
    admin = {"authorization": f"Bearer {load_admin_token(settings.admin_token_path)}"}
    status = httpx.get(f"{url}/v1/status", headers=admin).json()
    assert status["status"] == "ok" and status["edge_id"] == "edge-secret"
    assert status["cameras"]["cam-secret"]["detected"] == 1 and "tracks_open" in status["cameras"]["cam-secret"]
    assert {"uploads", "upload_error", "outbox_pending", "enhancement_store", "sources", "stages",
            "onnxruntime"} <= set(status)
    assert 'edge_frames_total{camera="cam-secret"} 1.0' in httpx.get(f"{url}/metrics", headers=admin).text
    docs = httpx.get(f"{url}/docs", headers=admin).text
    assert "swagger" in docs.lower() and "/v1/cameras/{camera_id}/frames" in docs  # the schema inline
    assert "/v1/status" in httpx.get(f"{url}/openapi.json", headers=admin).json()["paths"]
    assert httpx.get(f"{url}/redoc", headers=admin).status_code == 404


def test_the_admin_token_file_is_made_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "admin_token"
    token = load_admin_token(path)
    assert len(token) >= 32 and path.stat().st_mode & 0o777 == 0o600
    assert load_admin_token(path) == token  # a restart keeps it
    path.write_text("short\n")
    with pytest.raises(ValueError, match="at least 32"):
        load_admin_token(path)


def test_https_needs_both_files(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="EDGE_HTTPS_KEY_FILE"):
        EdgeSettings(https_cert_file=tmp_path / "edge.crt", data_dir=tmp_path)


def wait_https(url: str, trust: ssl.SSLContext, proc: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"edge exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", verify=trust, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise TimeoutError(f"the edge did not answer over HTTPS:\n{log.read_text()[-3000:]}")


def test_a_real_edge_serves_its_rest_api_over_https(tmp_path: Path) -> None:
    ca = Authority.create(tmp_path / "pki", "edge-rest-ca")
    cert, key = ca.issue(tmp_path / "pki", "edge-1")
    camera = add_camera(tmp_path / "camera_tokens", "lobby")
    port, log = free_port(), tmp_path / "edge.log"
    env = service_env(EDGE_HTTP_PORT=port, EDGE_GRPC_PORT=free_port(), EDGE_DATA_DIR=tmp_path / "edge",
                      EDGE_CLOUD_INGEST_ADDRESS=f"127.0.0.1:{free_port()}", EDGE_HTTPS_CERT_FILE=cert,
                      EDGE_HTTPS_KEY_FILE=key, EDGE_CAMERA_TOKENS_FILE=tmp_path / "camera_tokens",
                      EDGE_GRPC_INSECURE="true")
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edge_encoder"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url, trust = f"https://127.0.0.1:{port}", ssl.create_default_context(cafile=str(ca.cert_file))
        wait_https(url, trust, proc, log)
        frame = lfw_image("Colin_Powell", 1).read_bytes()
        r = httpx.post(f"{url}/v1/cameras/lobby/frames", content=frame, verify=trust, timeout=60,
                       headers={**JPEG, "authorization": f"Bearer {camera}"})
        assert r.status_code == 201 and r.json()["faces_detected"] == 1, r.text
        admin = {"authorization": f"Bearer {load_admin_token(tmp_path / 'edge' / 'admin_token')}"}
        assert httpx.get(f"{url}/v1/status", headers=admin, verify=trust).json()["cameras"]["lobby"]["detected"] == 1
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the edge's CA
            httpx.get(f"{url}/healthz", verify=ssl.create_default_context(), timeout=5)
        with pytest.raises(httpx.HTTPError):  # nor is anything served in clear text
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        proc.terminate()
        proc.wait(30)
