"""Fuzz all three services from their own OpenAPI (schemathesis): the analyzer, the reconstructor and an
edge served on loopback over a real Redis, with an admin key (a camera token for the edge's frame route)
and a few real things to find (a person, a recognised and an unknown face, a cluster, a track, an
erasure). Every operation the schemas list, valid and invalid requests, a fixed number each,
derandomised. No answer may be a 5xx or break what its schema declares (status, content type, body,
headers).
bench/api_fuzz.py runs the same with more cases."""

from __future__ import annotations

import pytest

from tests.helpers.fuzz import fuzz, summary, three_services

EXAMPLES = 12  # per operation and mode: ~1,000 cases, about a minute on two cores


@pytest.mark.slow
def test_no_server_errors_and_no_schema_violations(redis_server, tmp_path) -> None:
    with three_services(redis_server.url, tmp_path) as targets:
        report = fuzz(targets, EXAMPLES)
    result = summary(report)
    assert report.operations >= 30 and report.cases >= 10 * report.operations, result
    assert report.statuses.get(200, 0) > 0 and report.statuses.get(422, 0) > 0  # both kinds of case got through
    found = report.by_operation["cloud_analyzer GET /v1/faces/{face_id}"]
    assert found.get(200) and found.get(404), found  # seeded ids and generated ones
    frames = report.by_operation["edge_encoder POST /v1/cameras/{camera_id}/frames"]
    assert set(frames) - {401, 422}, frames  # the declared body reached the edge: a client can send a frame
    problems = [f"{f.service} {f.operation} [{f.mode}] {f.status}: {f.message} ({f.request})" for f in report.findings]
    assert report.server_errors == 0 and report.schema_violations == 0, "\n".join(problems[:20])
