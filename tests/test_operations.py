"""What an operator watches, over a real edge, analyzer and reconstructor on loopback (real Redis, real
models, real gRPC between them): after real traffic every metric the Grafana dashboard queries is exposed
on some service's /metrics (behind the admin token or a metrics:read key); one request id is followed from
the reconstructor's REST call into the edge's Fetch log line and its audit entry, and from the analyzer's
erasure into the edge's Erase log line; /readyz says ready, or 503 with Retry-After when Redis is gone;
logs come out as JSON lines with the request id."""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
import yaml
from facecoding.v1 import frames_pb2, frames_pb2_grpc

from cloud_analyzer.api import create_app as create_analyzer
from cloud_analyzer.settings import AnalyzerSettings
from cloud_reconstructor.api import create_app as create_reconstructor
from cloud_reconstructor.settings import ReconstructorSettings
from devstack.stack import RedisServer, free_port
from edge_encoder.api import create_app as create_edge
from edge_encoder.settings import EdgeSettings
from service_common import logs, request_id
from service_common.access import AuditLog
from service_common.access.camera_tokens import add_camera
from service_common.redis_client import connect
from service_common.redis_keys import EVENTS_STREAM, face_key
from tests.helpers import lfw_image, shards, wait_until
from tests.helpers.servers import api_client, edge_admin, serve

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "facecodec.json"
METRIC = re.compile(r"\b(?:edge|analyzer|reconstructor)_[a-z_]+\b")


class Lines(logging.Handler):
    """The JSON lines a service's logger writes, as service_common.logs formats them."""

    def __init__(self, service: str) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict] = []
        self.addFilter(logs.RequestIdFilter())
        self.setFormatter(logs.JsonFormatter(service))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))

    def with_id(self, rid: str) -> list[dict]:
        return [line for line in self.lines if line.get("request_id") == rid]


@pytest.fixture(scope="module")
def edge_log():
    logger = logging.getLogger("edge_encoder.fetch_service")
    handler, level = Lines("edge"), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture(scope="module")
def stack(redis_server, tmp_path_factory, edge_log):
    """(edge url, edge admin headers, analyzer url, reconstructor url, face ids the edge uplinked)."""
    connect(redis_server.url).flushdb()
    edge_grpc, analyzer_grpc = free_port(), free_port()
    edges = {"edge-ops": f"127.0.0.1:{edge_grpc}"}
    edge_settings = EdgeSettings(http_port=free_port(), grpc_port=edge_grpc, data_dir=tmp_path_factory.mktemp("edge"),
                                 edge_id="edge-ops", cloud_ingest_address=f"127.0.0.1:{analyzer_grpc}",
                                 grpc_insecure=True)
    camera = add_camera(edge_settings.tokens_path, "cam-ops")
    with tempfile.TemporaryDirectory(prefix="analyzer-secrets-") as secrets:
        analyzer_settings = AnalyzerSettings(redis_url=redis_server.url, grpc_port=analyzer_grpc,
                                             http_port=free_port(), edges=edges, grpc_insecure=True,
                                             admin_key_file=Path(secrets) / "admin_key")
        reconstructor_settings = ReconstructorSettings(
            redis_url=redis_server.url, http_port=free_port(), grpc_insecure=True, fetch_retries=0,
            fetch_timeout_s=2.0, edges={**edges, "edge-down": f"127.0.0.1:{free_port()}"})
        with serve(create_analyzer(analyzer_settings)) as analyzer, serve(create_edge(edge_settings)) as edge, \
                serve(create_reconstructor(reconstructor_settings)) as reconstructor:
            face_ids = []
            for name in ("Colin_Powell", "Tony_Blair"):
                r = httpx.post(f"{edge}/v1/cameras/cam-ops/frames", content=lfw_image(name, 1).read_bytes(),
                               headers={"content-type": "image/jpeg", "authorization": f"Bearer {camera}",
                                        "X-Request-ID": f"frame-{name}"}, timeout=60)
                assert r.status_code == 201 and r.headers["x-request-id"] == f"frame-{name}", r.text
                face_ids += [f["face_id"] for f in r.json()["faces"]]
            assert httpx.post(f"{edge}/v1/cameras/cam-ops/frames", content=b"x",
                              headers={"authorization": "Bearer wrong"}).status_code == 401
            client = connect(redis_server.url, decode_responses=True)
            wait_until(lambda: all(client.hget(face_key(f), "status") for f in face_ids), timeout_s=60,
                       what="the analyzer decided every uplinked face")
            # A camera's gRPC stream: its x-request-id goes with each of its frames' faces.
            with grpc.insecure_channel(f"127.0.0.1:{edge_grpc}") as channel:
                frame = frames_pb2.Frame(camera_id="cam-ops", image=lfw_image("Laura_Bush", 1).read_bytes())
                (ack,) = frames_pb2_grpc.FrameIngestStub(channel).SubmitFrames(
                    iter([frame]), metadata=(("authorization", f"Bearer {camera}"), ("x-request-id", "stream-1")),
                    timeout=60)
            assert ack.status == frames_pb2.FrameAck.ACCEPTED and ack.face_ids, ack
            face_ids += list(ack.face_ids)
            wait_until(lambda: all(client.hget(face_key(f), "status") for f in ack.face_ids), timeout_s=60,
                       what="the analyzer decided the streamed face")
            yield edge, edge_admin(edge_settings), analyzer, reconstructor, face_ids


def test_a_frames_request_id_reaches_the_analyzers_stream_face_and_event(stack, redis_server) -> None:
    """The edge's REST call -> the FaceRecord it uplinks -> the analyzer's ingest stream entry, face hash and
    decision event: one id from the camera's POST to the event a subscriber gets."""
    face_ids = stack[4]
    client = connect(redis_server.url, decode_responses=True)
    first = face_ids[0]
    assert client.hget(face_key(first), "request_id") == "frame-Colin_Powell"
    entries = {fields["face_id"]: fields.get("request_id") for fields in shards.ingest_entries(client)}
    assert entries[first] == "frame-Colin_Powell" and entries[face_ids[-1]] == "stream-1"
    assert "frame-Tony_Blair" in entries.values()
    events = [fields for _, fields in client.xrange(EVENTS_STREAM) if fields.get("face_id") == first]
    assert events and all(e.get("request_id") == "frame-Colin_Powell" for e in events), events


def test_one_request_id_is_followed_across_the_services(stack, redis_server, edge_log) -> None:
    edge, _, analyzer, reconstructor, face_ids = stack
    viewer = api_client(redis_server.url, ("faces:view",), name="ops-viewer")
    trace = f"ops-{uuid.uuid4().hex[:12]}"
    r = viewer.get(f"{reconstructor}/v1/faces/{face_ids[0]}/image", params={"layers": "full"},
                   headers={"X-Request-ID": trace})
    assert r.status_code == 200 and r.headers["x-request-id"] == trace
    # The edge served the Fetch under the reconstructor's id (gRPC metadata x-request-id) ...
    fetched = wait_until(lambda: edge_log.with_id(trace), what="the edge's Fetch log line with the request id")
    assert fetched[0]["service"] == "edge" and face_ids[0] in fetched[0]["msg"]
    # ... and the reconstructor's audit entry of the view names the same id.
    views, _ = AuditLog(connect(redis_server.url)).query(action="face.view")
    assert [(e.face_id, e.request_id) for e in views if e.key_name == "ops-viewer"] == [(face_ids[0], trace)]

    # An erasure's id reaches the edge with its Erase, sent later by the analyzer's background eraser.
    admin = api_client(redis_server.url)
    erase_trace = f"erase-{uuid.uuid4().hex[:12]}"
    r = admin.delete(f"{analyzer}/v1/faces/{face_ids[-1]}", headers={"X-Request-ID": erase_trace})
    assert r.status_code in (200, 202) and r.headers["x-request-id"] == erase_trace, r.text
    erased = wait_until(lambda: edge_log.with_id(erase_trace), what="the edge's Erase log line with the request id")
    assert "erased" in erased[0]["msg"]
    audited = admin.get(f"{analyzer}/v1/audit", params={"action": "face.erase"}).json()["items"]
    assert [e["request_id"] for e in audited] == [erase_trace]  # the erasure's audit entry, over REST

    # An id that is not a sane token is replaced, not echoed into logs and headers.
    for bad in ("a b;<script>", "x" * 65, '{"json": 1}'):
        r = viewer.get(f"{reconstructor}/v1/faces/{face_ids[0]}/image", headers={"X-Request-ID": bad})
        assert r.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def scrape(url: str, headers: dict[str, str]) -> set[str]:
    r = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return {line.split("{")[0].split(" ")[0] for line in r.text.splitlines() if line and not line.startswith("#")}


def test_every_metric_the_dashboard_queries_is_exposed_after_traffic(stack, redis_server) -> None:
    edge, edge_headers, analyzer, reconstructor, face_ids = stack
    viewer = api_client(redis_server.url, ("faces:view",))
    for layers in ("base", "full"):
        assert viewer.get(f"{reconstructor}/v1/faces/{face_ids[0]}/image", params={"layers": layers}).status_code == 200
    client = connect(redis_server.url)
    lost = uuid.uuid4().hex  # a face held by an edge that is down: one failed fetch
    client.hset(face_key(lost), mapping={"base_layer": client.hget(face_key(face_ids[0]), "base_layer"),
                                         "edge_id": "edge-down", "enhancement_levels": 5})
    assert viewer.get(f"{reconstructor}/v1/faces/{lost}/image", params={"layers": "full"}).status_code == 503

    scraper = api_client(redis_server.url, ("metrics:read",))
    reader = api_client(redis_server.url, ("sightings:read",))
    for url in (analyzer, reconstructor):
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert reader.get(f"{url}/metrics").status_code == 403
    exposed = scrape(analyzer, dict(scraper.headers)) | scrape(reconstructor, dict(scraper.headers)) | \
        scrape(edge, edge_headers)
    queried = {name for panel in json.loads(DASHBOARD.read_text())["panels"]
               for target in panel["targets"] for name in METRIC.findall(target["expr"])}
    assert len(queried) >= 20 and queried - exposed == set(), sorted(queried - exposed)
    # The scrape configuration beside it names a job, with credentials, for each of the three services.
    jobs = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    assert {target.split(":")[1] for job in jobs for target in job["static_configs"][0]["targets"]} == {
        "8001", "8002", "8003"} and all(job["authorization"]["credentials_file"] for job in jobs)

    text = httpx.get(f"{analyzer}/metrics", headers=dict(scraper.headers)).text
    accepted = re.search(r'^analyzer_faces_ingested_total\{result="accepted"\} (\S+)$', text, re.M)
    assert accepted and float(accepted.group(1)) == len(face_ids)
    count = re.search(r"^analyzer_recognition_seconds_count (\S+)$", text, re.M)
    assert count and float(count.group(1)) >= len(face_ids)
    text = httpx.get(f"{reconstructor}/metrics", headers=dict(scraper.headers)).text
    assert 'reconstructor_fetch_failures_total{code="UNAVAILABLE",edge="edge-down"} 1.0' in text
    assert re.search(r'^reconstructor_fetch_seconds_count\{edge="edge-ops"\} [1-9]', text, re.M)


def test_ready_means_redis_models_and_servers(stack, tmp_path) -> None:
    _, _, analyzer, reconstructor, _ = stack
    for url in (analyzer, reconstructor):
        r = httpx.get(f"{url}/readyz")
        assert r.status_code == 200 and r.json()["ready"] is True and all(r.json()["checks"].values())
    assert set(httpx.get(f"{analyzer}/readyz").json()["checks"]) == {"redis", "models_loaded", "ingest_server",
                                                                     "workers"}
    private = RedisServer(tmp_path / "redis")
    private.start()
    settings = ReconstructorSettings(redis_url=private.url, http_port=free_port(), grpc_insecure=True,
                                     redis_timeout_s=0.5)
    with serve(create_reconstructor(settings)) as url:
        private.stop()
        r = httpx.get(f"{url}/readyz", timeout=10)
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json() == {"ready": False, "checks": {"redis": False, "models_loaded": True}}
        live = httpx.get(f"{url}/healthz", timeout=10)  # liveness: the process answers; no restart for Redis
        assert live.status_code == 200 and live.json() == {"status": "ok"}


def test_logs_are_json_lines_with_the_request_id_when_asked() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    out = io.StringIO()
    try:
        logs.configure("analyzer", "json", stream=out)
        with request_id.bound("req-42"):
            logging.getLogger("cloud_analyzer.test").info("face %s decided", "f1")
        logging.getLogger("cloud_analyzer.test").warning("outside a request")
        logs.configure("analyzer", "text", stream=out)
        with request_id.bound("req-43"):
            logging.getLogger("cloud_analyzer.test").info("in text")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    first, second, third = out.getvalue().splitlines()
    line = json.loads(first)
    assert line["request_id"] == "req-42" and line["msg"] == "face f1 decided" and line["service"] == "analyzer"
    assert line["level"] == "info" and line["ts"].endswith("Z")
    assert "request_id" not in json.loads(second)
    assert "analyzer INFO cloud_analyzer.test [req-43]: in text" in third
