"""Every error is a problem (RFC 9457, application/problem+json), wherever it is made: the key gate and
the body limit (pure ASGI, before the app), validation, routers' HTTPException, unknown routes; and the
OpenAPI documents, for every operation, the errors it can return (a real analyzer on loopback, real
Redis)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Path

from service_common import problems
from service_common.access import KeyStore, new_token
from service_common.guard import require
from service_common.redis_client import connect
from tests.helpers.servers import api_client

PROBLEM = "application/problem+json"


def problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM, r.headers
    body = r.json()
    assert body["type"] == "about:blank" and body["status"] == status and body["title"] and body["detail"], body
    return body


@pytest.fixture
def admin(redis_server) -> httpx.Client:
    return api_client(redis_server.url, ("admin",))


def test_every_error_of_the_analyzer_is_a_problem(analyzer, redis_server, admin) -> None:
    url, _ = analyzer
    anonymous = problem(httpx.get(f"{url}/v1/sightings"), 401)  # the gate, before the app
    assert "API key" in anonymous["detail"]
    assert httpx.get(f"{url}/v1/sightings").headers["www-authenticate"] == "Bearer"
    reader = api_client(redis_server.url, ("sightings:read",))
    assert "'admin'" in problem(reader.get(f"{url}/v1/audit"), 403)["detail"]
    problem(admin.get(f"{url}/v1/no-such-route"), 404)
    problem(admin.get(f"{url}/v1/faces/{'a' * 32}"), 404)  # a router's HTTPException
    problem(admin.put(f"{url}/v1/sightings"), 405)

    invalid = problem(admin.get(f"{url}/v1/sightings", params={"limit": 0, "camera_id": "a b"}), 422)
    assert {tuple(e["loc"]) for e in invalid["errors"]} == {("query", "limit"), ("query", "camera_id")}
    assert all(set(e) == {"loc", "msg", "type"} for e in invalid["errors"])  # never the input echoed
    assert "limit" in invalid["detail"]
    problem(admin.post(f"{url}/v1/keys", json={"name": "x", "scopes": ["no-such-scope"]}), 422)
    after = problem(admin.get(f"{url}/v1/sightings", params={"since": "2026-02-01T00:00:00Z",
                                                            "until": "2026-01-01T00:00:00Z"}), 422)
    assert after["detail"] == "since is after until" and "errors" not in after  # a router's own 422

    big = problem(admin.post(f"{url}/v1/keys", content=b"{" + b" " * 200_000 + b"}",
                             headers={"content-type": "application/json"}), 413)
    assert "larger than" in big["detail"]

    token = new_token()
    KeyStore(connect(redis_server.url)).register(token, "slow", ["sightings:read"], rate_per_s=1)
    slow = httpx.Client(headers={"authorization": f"Bearer {token}"}, timeout=30)
    answers = [slow.get(f"{url}/v1/cameras") for _ in range(5)]
    limited = next(r for r in answers if r.status_code == 429)
    problem(limited, 429)
    assert int(limited.headers["retry-after"]) >= 1


def test_the_openapi_documents_each_operations_errors(analyzer, admin) -> None:
    url, _ = analyzer
    schema = admin.get(f"{url}/openapi.json").json()
    assert "Problem" in schema["components"]["schemas"] and "HTTPValidationError" not in schema["components"]["schemas"]
    operations = [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 25 and sum(bool(op.get("security")) for _, _, op in operations) >= 20
    for path, method, op in operations:
        errors = {int(s): r for s, r in op["responses"].items() if int(s) >= 400}
        expected = {413, 503} | ({401, 403, 429} if op.get("security") else set()) | ({404} if "{" in path else set())
        assert expected <= set(errors), (method, path, sorted(errors))
        for status, response in errors.items():
            if path.startswith("/api/v1/") and "application/json" in response["content"]:
                continue  # CompreFace-compatible routes: CompreFace's error body (test_compreface_contract)
            content = response["content"][PROBLEM]
            assert content["schema"] == {"$ref": "#/components/schemas/Problem"}, (method, path, status)
            assert content["example"]["status"] == status
        assert "Retry-After" in errors[503]["headers"]
    erase = schema["paths"]["/v1/cameras/{camera_id}/erase"]["post"]["responses"]
    merge = schema["paths"]["/v1/clusters/{cluster_id}/merge"]["post"]["responses"]
    assert "422" in erase and "409" in merge  # found in the routers' code


def test_routes_added_after_install_are_documented_too() -> None:
    app = FastAPI()
    problems.install(app, __import__("logging").getLogger("test"))
    router = APIRouter()

    @router.post("/v1/things/{thing_id}/frob", dependencies=[require("admin", "thing.frob")])
    def frob(thing_id: str = Path(pattern="^[a-z]+$")) -> dict:
        if thing_id == "busy":
            raise HTTPException(409, "busy")
        return {}

    app.include_router(router)  # after install: the walk happens when the schema is first built
    responses = app.openapi()["paths"]["/v1/things/{thing_id}/frob"]["post"]["responses"]
    assert {"401", "403", "404", "409", "413", "422", "429", "503"} <= set(responses)
    assert responses["409"]["content"][PROBLEM]["example"]["detail"]


def test_the_edge_declares_its_frame_body_and_its_errors(tmp_path) -> None:
    from edge_encoder.api import create_app
    from edge_encoder.settings import EdgeSettings

    schema = create_app(EdgeSettings(data_dir=tmp_path, grpc_insecure=True)).openapi()
    frames = schema["paths"]["/v1/cameras/{camera_id}/frames"]["post"]
    body = frames["requestBody"]
    assert body["required"] and {"image/jpeg", "image/png", "image/webp", "multipart/form-data"} <= set(body["content"])
    assert body["content"]["multipart/form-data"]["schema"]["required"] == ["image"]
    assert {"400", "401", "413", "415", "422", "429", "503"} <= set(frames["responses"])
    assert frames["responses"]["401"]["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
    ready = schema["paths"]["/readyz"]["get"]["responses"]["503"]  # its own body, not a problem
    assert PROBLEM not in ready["content"] and "Retry-After" in ready["headers"]
