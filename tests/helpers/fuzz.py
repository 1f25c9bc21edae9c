"""Fuzz a running service from its own OpenAPI (schemathesis): every operation the schema lists, valid
and invalid requests, a fixed number per operation, derandomised (the same cases every run).

A case fails when the answer is a 5xx, or breaks what the schema declares for it (an undocumented
status, another content type, a body or headers not matching their schema). Operations come from the
schema, never from a list here: routes added later are fuzzed as soon as they are served.
Used by tests/test_api_fuzz.py (bounded) and bench/api_fuzz.py (larger).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service_common.redis_client import connect

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@dataclass
class Target:
    name: str
    base_url: str
    schema: dict[str, Any]  # the service's /openapi.json
    headers: dict[str, str]  # credentials sent with every case
    # Ids of things that exist (a face, an identity, a cluster...): GET operations whose path names only
    # such ids are fuzzed once more with them, so their 200 answers are checked too, not only 404s.
    known_ids: dict[str, str] = field(default_factory=dict)
    camera_headers: dict[str, str] | None = None  # the edge: sent to operations with a camera_id instead

    def headers_for(self, operation: Any) -> dict[str, str]:
        if self.camera_headers is not None and "camera_id" in {p.name for p in operation.path_parameters}:
            return self.camera_headers
        return self.headers


@dataclass
class Finding:
    service: str
    operation: str
    mode: str
    status: int
    kind: str  # server_error | schema_violation
    message: str
    request: str


@dataclass
class FuzzReport:
    operations: int = 0
    cases: int = 0
    statuses: Counter = field(default_factory=Counter)
    by_operation: dict[str, Counter] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    streams_skipped: list[str] = field(default_factory=list)  # endless answers (SSE), tested on their own

    @property
    def server_errors(self) -> int:
        return sum(f.kind == "server_error" for f in self.findings)

    @property
    def schema_violations(self) -> int:
        return sum(f.kind == "schema_violation" for f in self.findings)


def fuzz(targets: list[Target], examples: int, report: FuzzReport | None = None) -> FuzzReport:
    """`examples` cases per operation and mode (valid, invalid) against every operation of every target."""
    report = report or FuzzReport()
    started = time.perf_counter()
    for target in targets:
        schema = schemathesis.openapi.from_dict(target.schema)
        for result in schema.get_all_operations():
            operation = result.ok()
            if _streams(operation):  # never ends (pings keep it open): tests/test_events_sse.py covers it
                report.streams_skipped.append(f"{target.name} {operation.method.upper()} {operation.path}")
                continue
            report.operations += 1
            names = {p.name for p in operation.path_parameters}
            if operation.method.upper() == "GET" and names and names <= set(target.known_ids):
                fixed = {k: v for k, v in target.known_ids.items() if k in names}
                _run(target, operation, GenerationMode.POSITIVE, examples, report, fixed)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _run(target, operation, mode, examples, report)
    report.seconds += time.perf_counter() - started
    return report


def _streams(operation: Any) -> bool:
    """A Server-Sent Events route: its success answer is an endless stream."""
    ok = (operation.definition.raw.get("responses") or {}).get("200") or {}
    return "text/event-stream" in (ok.get("content") or {})


def _run(target: Target, operation: Any, mode: GenerationMode, examples: int, report: FuzzReport,
         fixed: dict[str, str] | None = None) -> None:
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)
    label = f"{operation.method.upper()} {operation.path}"
    headers = target.headers_for(operation)

    @hypothesis.settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                         print_blob=False)
    @hypothesis.given(strategy)
    def one(case: Any) -> None:
        response = case.call(base_url=target.base_url, headers=headers, timeout=60)
        report.cases += 1
        report.statuses[response.status_code] += 1
        report.by_operation.setdefault(f"{target.name} {label}", Counter())[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # a schemathesis Failure, or a group of them
            failures = list(getattr(exc, "exceptions", [exc]))
            for failure in failures:
                kind = "server_error" if response.status_code >= 500 else "schema_violation"
                report.findings.append(Finding(target.name, label, str(mode), response.status_code, kind,
                                               str(getattr(failure, "title", "") or failure)[:300],
                                               _request(response)))

    try:
        one()
    except hypothesis.errors.Unsatisfiable:  # no case can be made in this mode (e.g. nothing to negate)
        pass
    except Exception as exc:  # generation itself failed: a schema schemathesis cannot read is a finding too
        if "Unsatisfiable" in type(exc).__name__ or "negative" in str(exc).lower():
            return
        report.findings.append(Finding(target.name, label, str(mode), 0, "schema_violation",
                                       f"cannot generate: {type(exc).__name__}: {str(exc)[:300]}", ""))


def _request(response: Any) -> str:
    request = getattr(response, "request", None)
    if request is None:
        return ""
    body = request.body or b""
    return f"{request.method} {request.url} ({len(body)} body bytes)"


def summary(report: FuzzReport) -> dict[str, Any]:
    return {"operations": report.operations, "cases": report.cases, "server_errors": report.server_errors,
            "schema_violations": report.schema_violations, "seconds": round(report.seconds, 1),
            "statuses": {str(k): v for k, v in sorted(report.statuses.items())},
            "by_operation": {op: {str(k): v for k, v in sorted(c.items())} for op, c in report.by_operation.items()},
            "findings": [f.__dict__ for f in report.findings[:50]],
            "streams_not_fuzzed": report.streams_skipped}


@contextmanager
def three_services(redis_url: str, data_dir: Path) -> Iterator[list[Target]]:
    """The analyzer, the reconstructor and an edge, each on loopback (uvicorn), over one real Redis,
    with an admin key (rate limits and the denial budget raised: the fuzz is one fast client) and, for
    the edge, a fleet camera token. Yields one Target per service."""
    from cloud_reconstructor.api import create_app as create_reconstructor
    from cloud_reconstructor.settings import ReconstructorSettings
    from devstack.stack import free_port
    from edge_encoder.api import create_app as create_edge
    from edge_encoder.settings import EdgeSettings
    from service_common.access import KeyStore, new_token
    from service_common.access.camera_tokens import add_camera
    from tests.helpers.servers import edge_admin, serve, serve_analyzer

    generous = {"rate_limit_per_s": 100_000, "denial_budget_per_min": 100_000}
    with serve_analyzer(redis_url, **generous) as (analyzer, ingest):
        token = new_token()
        key = KeyStore(connect(redis_url)).register(token, "fuzz", ["admin"], rate_per_s=100_000)
        admin = {"authorization": f"Bearer {token}"}
        known = {"key_id": key.key_id, **seed(analyzer, ingest, admin)}
        edge_settings = EdgeSettings(http_port=free_port(), grpc_port=free_port(), data_dir=data_dir / "edge",
                                     grpc_insecure=True, cloud_ingest_address=f"127.0.0.1:{free_port()}")
        # The seeded faces' edge is this edge, which does not hold them: full views and snapshots get its
        # real answer (410, 404), as when an edge has evicted a face.
        recon_settings = ReconstructorSettings(redis_url=redis_url, http_port=free_port(), grpc_insecure=True,
                                               edges={"edge-t": f"127.0.0.1:{edge_settings.grpc_port}"},
                                               fetch_retries=0, fetch_timeout_s=1.0, **generous)
        camera = {"authorization": f"Bearer {add_camera(edge_settings.tokens_path, '*')}"}
        with serve(create_reconstructor(recon_settings)) as recon, serve(create_edge(edge_settings)) as edge:
            edge_admin_headers = edge_admin(edge_settings)
            schemas = {name: httpx.get(f"{url}/openapi.json", headers=headers, timeout=30).json()
                       for name, url, headers in (("cloud_analyzer", analyzer, admin),
                                                  ("cloud_reconstructor", recon, admin),
                                                  ("edge_encoder", edge, edge_admin_headers))}
            yield [
                Target("cloud_analyzer", analyzer, schemas["cloud_analyzer"], admin, known),
                Target("cloud_reconstructor", recon, schemas["cloud_reconstructor"], admin, known),
                # The camera route takes a camera token, the rest the admin token: each operation gets
                # the one its security asks for (see _edge_headers).
                Target("edge_encoder", edge, schemas["edge_encoder"], edge_admin_headers, camera_headers=camera),
            ]


def seed(analyzer: str, ingest: Any, admin: dict[str, str]) -> dict[str, str]:
    """Things for GET operations to find: an enrolled person, a face recognised as them (on a track), an
    unknown face (in a cluster), an erasure. Their ids, by path parameter name."""
    from facecoding.v1 import ingest_pb2

    from facecodec.frontend import FaceFrontEnd
    from tests.helpers import lfw_image, wait_until
    from tests.helpers.records import recent_ms, record

    client = httpx.Client(headers=admin, timeout=60)
    photos = [("images", (f"{i}.jpg", lfw_image("Colin_Powell", i).read_bytes(), "image/jpeg")) for i in (1, 2)]
    identity = client.post(f"{analyzer}/v1/identities", data={"name": "Colin Powell"}, files=photos)
    identity.raise_for_status()
    front_end, base = FaceFrontEnd(), recent_ms(days=1)
    known = record(front_end, lfw_image("Colin_Powell", 3), "fuzz-cam", base)
    known.track_id = "fuzz-track"
    stranger = record(front_end, lfw_image("Tony_Blair", 1), "fuzz-cam", base + 60_000)
    acks = [a.status for a in ingest.Ingest(iter([known, stranger]), timeout=60)]
    assert acks == [ingest_pb2.IngestAck.ACCEPTED] * 2, acks

    def decided() -> dict | None:
        face = client.get(f"{analyzer}/v1/faces/{stranger.face_id}").json()
        return face if face.get("status") not in (None, "pending") and face.get("cluster_id") else None

    unknown = wait_until(decided, 60, 0.2, "the stranger's face decided and clustered")
    erasure = client.post(f"{analyzer}/v1/cameras/fuzz-empty/erase",
                          json={"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"})
    erasure.raise_for_status()
    client.close()
    return {"identity_id": identity.json()["identity_id"], "face_id": known.face_id, "track_id": "fuzz-track",
            "cluster_id": unknown["cluster_id"], "erasure_id": erasure.json()["erasure_id"], "camera_id": "fuzz-cam"}
