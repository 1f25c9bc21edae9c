"""The CompreFace-compatible router's OpenAPI declares every request and response field CompreFace's own
documentation lists (docs/compreface-contract.json, taken from exadel-inc/CompreFace's
Rest-API-description.md). The answers themselves are checked against these schemas by the fuzz test and
by the SDK and Double Take tests (tests/test_compreface_api.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from cloud_analyzer.api import create_app
from cloud_analyzer.settings import AnalyzerSettings

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = json.loads((ROOT / "docs" / "compreface-contract.json").read_text())


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    logging.disable(logging.WARNING)  # plaintext settings warn; only the routes are read
    try:
        return create_app(AnalyzerSettings(grpc_insecure=True)).openapi()
    finally:
        logging.disable(logging.NOTSET)


def resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while True:
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in schema:  # X | None: the X
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        else:
            return schema


def has_field(schema: dict[str, Any], dotted: str, spec: dict[str, Any]) -> bool:
    """Whether `result[].box.x_max` (`[]`: the items of an array) is declared in `schema`."""
    for part in dotted.split("."):
        name, is_list = part.removesuffix("[]"), part.endswith("[]")
        field = resolve(schema, spec).get("properties", {}).get(name)
        if field is None:
            return False
        schema = resolve(field, spec)
        if is_list:
            if schema.get("type") != "array":
                return False
            schema = schema["items"]
    return True


@pytest.mark.parametrize("call", CONTRACT["endpoints"], ids=lambda c: f"{c['method']} {c['path']}")
def test_the_documented_fields_are_declared(spec, call) -> None:
    operation = spec["paths"].get(call["path"], {}).get(call["method"].lower())
    assert operation is not None, f"{call['method']} {call['path']} is not served"
    declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    assert set(call.get("query", [])) <= declared, set(call.get("query", [])) - declared
    for media, fields in call.get("body", {}).items():
        body = resolve(operation["requestBody"]["content"][media]["schema"], spec)
        assert set(fields) <= set(body.get("properties", {})), (media, fields)
    answer = operation["responses"][str(call.get("status", 200))]["content"]["application/json"]["schema"]
    missing = [f for f in call["response"] if not has_field(answer, f, spec)]
    assert not missing, missing
    for status, response in operation["responses"].items():  # errors in CompreFace's body, not ours
        if status in ("400", "401", "403", "404", "429"):
            error = resolve(response["content"]["application/json"]["schema"], spec)
            assert set(error["properties"]) == {"message", "code"}, (status, error)


def test_the_check_sees_a_missing_field(spec) -> None:
    recognize = spec["paths"]["/api/v1/recognition/recognize"]["post"]["responses"]["200"]["content"]
    schema = recognize["application/json"]["schema"]
    assert has_field(schema, "result[].subjects[].similarity", spec)
    assert not has_field(schema, "result[].subjects[].age", spec)
    assert not has_field(schema, "result.subjects", spec)  # result is a list: it needs its []
