"""Scopes: docs/security.md's table is exactly what the apps' routes demand, biometric search and full
pixels need scopes of their own, and listings are audited (real analyzer and reconstructor on loopback,
real Redis)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from cloud_analyzer.api import create_app as create_analyzer
from cloud_analyzer.settings import AnalyzerSettings
from cloud_reconstructor.api import create_app as create_reconstructor
from cloud_reconstructor.settings import ReconstructorSettings
from devstack.stack import free_port
from service_common.access import AuditLog
from service_common.redis_client import connect
from service_common.redis_keys import face_key
from service_common.routes import scope_table
from tests.helpers.servers import api_client, serve, serve_analyzer

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\| (analyzer|reconstructor) \| (`[a-z:_]+`|\(open\)) \| `([A-Z]+ [^`]+)` \| (`[a-z._]+`|no) \|$")


def documented() -> dict[str, set[tuple[str, str, str]]]:
    rows: dict[str, set[tuple[str, str, str]]] = {"analyzer": set(), "reconstructor": set()}
    for line in (ROOT / "docs" / "security.md").read_text().splitlines():
        if match := ROW.match(line):
            service, scope, endpoint, action = match.groups()
            rows[service].add((scope.strip("`").replace("(open)", "open"), endpoint,
                               "" if action == "no" else action.strip("`")))
    return rows

# Only the routes are read: the app's gRPC side never starts, so no certificates are needed.
PLAINTEXT = AnalyzerSettings(grpc_insecure=True)


def test_the_scope_table_in_security_md_is_what_the_routes_demand() -> None:
    doc = documented()
    assert scope_table(create_analyzer(PLAINTEXT)) == doc["analyzer"]
    assert scope_table(create_reconstructor(ReconstructorSettings(grpc_insecure=True))) == doc["reconstructor"]
    searches = {endpoint for scope, endpoint, _ in doc["analyzer"] if scope == "faces:search"}
    assert searches == {"POST /v1/search", "POST /v1/search/history", "POST /api/v1/recognition/recognize"}


def test_the_table_check_sees_a_change(tmp_path: Path) -> None:
    """A route whose scope differs from the doc is caught (the comparison is not vacuous)."""
    rows = scope_table(create_analyzer(PLAINTEXT))
    assert ("faces:search", "POST /v1/search/history", "search.history") in rows
    assert ("sightings:read", "POST /v1/search/history", "search.history") not in rows
    assert all(action for scope, endpoint, action in rows if scope == "faces:search")


@pytest.fixture(scope="module")
def analyzer(redis_server):
    with serve_analyzer(redis_server.url) as (url, _):
        yield url


def test_biometric_search_needs_its_own_scope_and_listings_are_audited(analyzer, redis_server) -> None:
    reader = api_client(redis_server.url, ("sightings:read", "identities:read"))
    searcher = api_client(redis_server.url, ("faces:search",))
    probe = {"base_layer": "AAAA"}
    refused = reader.post(f"{analyzer}/v1/search/history", data=probe)
    assert refused.status_code == 403 and "'faces:search'" in refused.json()["detail"]  # the gate's answer
    assert reader.post(f"{analyzer}/v1/search", files={"image": ("p.jpg", b"x")}).status_code == 403
    assert searcher.post(f"{analyzer}/v1/search/history", data=probe).status_code == 422  # past the gate
    assert searcher.get(f"{analyzer}/v1/sightings").status_code == 403

    assert reader.get(f"{analyzer}/v1/sightings", params={"camera_id": "door"}).status_code == 200
    assert reader.get(f"{analyzer}/v1/sightings/tracks/t-1").status_code == 404
    admin = api_client(redis_server.url)
    assert admin.get(f"{analyzer}/v1/audit", params={"action": "search.history"}).status_code == 200
    audit = AuditLog(connect(redis_server.url))
    (listing,) = audit.query(action="sightings.list")[0]
    assert listing.outcome == "ok" and "camera_id=door" in listing.detail and "0 sightings" in listing.detail
    assert audit.query(action="track.view")[0][0].status == 404
    (search,) = audit.query(action="search.history")[0]
    assert search.outcome == "failed" and search.status == 422
    assert audit.query(action="audit.query")[0][0].key_id == admin.headers["authorization"].split("_")[1]


def test_base_previews_and_full_pixels_are_separate_scopes(redis_server, redis_client, front_end) -> None:
    from facecodec.codec.profiles import codec_by_name
    from facecodec.frontend import decode_image
    from tests.helpers import lfw_image

    face = front_end.largest_face(decode_image(lfw_image("Colin_Powell", 2).read_bytes()))
    coded = codec_by_name("scalable").encode(face.crop, front_end.describe(face.crop)[0])
    face_id = uuid.uuid4().hex
    redis_client.hset(face_key(face_id), mapping={"base_layer": coded.base_only().to_bytes(),
                                                     "edge_id": "edge-gone", "enhancement_levels": 4})
    settings = ReconstructorSettings(redis_url=redis_server.url, http_port=free_port(), fetch_timeout_s=0.5,
                                     fetch_retries=0, edges={"edge-gone": f"127.0.0.1:{free_port()}"},
                                     grpc_insecure=True)
    base_viewer = api_client(redis_server.url, ("faces:view_base",))
    viewer = api_client(redis_server.url, ("faces:view",))
    with serve(create_reconstructor(settings)) as url:
        image = f"{url}/v1/faces/{face_id}/image"
        assert base_viewer.get(image).status_code == 200  # layers=base by default
        assert base_viewer.get(image, params={"layers": "base"}).status_code == 200
        full = base_viewer.get(image, params={"layers": "full"})
        assert full.status_code == 403 and "faces:view" in full.json()["detail"]
        assert viewer.get(image, params={"layers": "base"}).status_code == 200  # faces:view holds base
        assert viewer.get(image, params={"layers": "full"}).status_code == 503  # past the gate: edge gone
    views = AuditLog(redis_client).query(action="face.view")[0]
    assert [(e.layers, e.status) for e in reversed(views)] == [("base", 200), ("base", 200), ("base", 200),
                                                              ("full:all", 503)]
