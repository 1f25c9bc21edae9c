"""Print every REST endpoint of the three services with a curl example, as Markdown for README.md.

    python scripts/api_reference.py            # print
    python scripts/api_reference.py --write    # replace the block between README's api-reference markers

Read from the apps themselves (their OpenAPI and the scope each route demands), so a new route shows
up here without anyone remembering to; tests/test_docs.py fails when README.md is stale. The shell
variables are the ones `var/stack/stack.env` sets (README's quickstart): `$ANALYZER`, `$EDGE`,
`$RECONSTRUCTOR`, `$AUTH` (`Authorization: Bearer $ADMIN_KEY`), `$CAMERA_TOKEN`, `$EDGE_ADMIN_TOKEN`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from cloud_analyzer.api import create_app as create_analyzer
from cloud_analyzer.settings import AnalyzerSettings
from cloud_reconstructor.api import create_app as create_reconstructor
from cloud_reconstructor.settings import ReconstructorSettings
from edge_encoder.api import create_app as create_edge
from edge_encoder.settings import EdgeSettings
from service_common.routes import flat_routes, policy

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- api-reference -->", "<!-- /api-reference -->"
OPEN_EDGE_PATHS = {"/healthz", "/readyz"}
METHODS = ("get", "post", "put", "patch", "delete")


def apps() -> list[tuple[str, str, FastAPI]]:
    """(service, base-URL variable, app): only the routes are read, so no certificates are needed
    (hence plaintext gRPC settings, never started)."""
    logging.disable(logging.WARNING)  # the plaintext settings warn; nothing runs here
    try:
        return [
            ("edge_encoder", "$EDGE", create_edge(EdgeSettings(grpc_insecure=True))),
            ("cloud_analyzer", "$ANALYZER", create_analyzer(AnalyzerSettings(grpc_insecure=True))),
            ("cloud_reconstructor", "$RECONSTRUCTOR",
             create_reconstructor(ReconstructorSettings(grpc_insecure=True))),
        ]
    finally:
        logging.disable(logging.NOTSET)


def scopes(app: FastAPI) -> dict[tuple[str, str], str]:
    """(METHOD, path) -> the scope it demands ("open" when none)."""
    found = {}
    for route in flat_routes(app):
        rule = policy(route).require
        for method in getattr(route, "methods", None) or []:
            found[(method, route.path)] = rule.scope if rule else "open"  # type: ignore[attr-defined]
    return found


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _example(schema: dict[str, Any], spec: dict[str, Any], name: str) -> Any:
    schema = _resolve(schema, spec)
    for key in ("example", "default"):
        if schema.get(key) is not None:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _example(next(s for s in schema["anyOf"] if s.get("type") != "null"), spec, name)
    kind = schema.get("type")
    if schema.get("format") == "date-time":
        return "2026-12-07T09:00:00.000Z"
    if kind == "object":
        required = schema.get("required", [])
        return {k: _example(v, spec, k) for k, v in schema.get("properties", {}).items() if k in required}
    if kind == "array":
        return [_example(schema.get("items", {}), spec, name)]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 0.5
    if kind == "boolean":
        return True
    return f"${name.upper()}" if name.endswith("_id") else f"<{name}>"


def _auth(service: str, path: str, scope: str) -> list[str]:
    if scope == "open" and (service != "edge_encoder" or path in OPEN_EDGE_PATHS):
        return []
    if service == "edge_encoder":
        token = "$CAMERA_TOKEN" if "/frames" in path else "$EDGE_ADMIN_TOKEN"
        return [f'-H "Authorization: Bearer {token}"']
    if path.startswith("/api/v1/"):  # the CompreFace-compatible routes take their key as x-api-key
        return ['-H "x-api-key: $ADMIN_KEY"']
    return ['-H "$AUTH"']


def _body(operation: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    if "multipart/form-data" in content or "application/x-www-form-urlencoded" in content:
        form = content.get("multipart/form-data") or content["application/x-www-form-urlencoded"]
        schema = _resolve(form["schema"], spec)
        parts = []
        for name, field in schema.get("properties", {}).items():
            field = _resolve(field, spec)
            if "anyOf" in field:  # optional: X | None
                field = _resolve(next(s for s in field["anyOf"] if s.get("type") != "null"), spec)
            items = _resolve(field.get("items", {}), spec)
            if any(s.get("format") == "binary" or s.get("contentMediaType") for s in (field, items)):
                parts.append(f"-F {name}=@face.jpg")
            elif name in schema.get("required", []):
                parts.append(f"-F {name}={json.dumps(_example(field, spec, name))}")
        return parts
    if "application/json" in content:
        body = _example(content["application/json"]["schema"], spec, "body")
        return ["-H 'content-type: application/json'", f"-d '{json.dumps(body)}'"]
    for media in content:  # a raw body (an image)
        return [f"-H 'content-type: {media}'", "--data-binary @frame.jpg"]
    return []


def _query(operation: dict[str, Any], spec: dict[str, Any]) -> str:
    required = [p for p in operation.get("parameters", []) if p["in"] == "query" and p.get("required")]
    pairs = [f"{p['name']}={_example(p.get('schema', {}), spec, p['name'])}" for p in required]
    return "?" + "&".join(pairs) if pairs else ""


def curl(service: str, base: str, method: str, path: str, operation: dict[str, Any], spec: dict[str, Any],
         scope: str) -> str:
    url = base + re.sub(r"\{(\w+)\}", lambda m: f"${m.group(1).upper()}", path) + _query(operation, spec)
    body = _body(operation, spec)
    # curl says GET on its own, and POST whenever it sends a body; every other case names its method.
    named = method != "get" and not (method == "post" and body)
    words = ["curl", "-s", *([f"-X {method.upper()}"] if named else []), f'"{url}"', *_auth(service, path, scope),
             *body]
    return " ".join(words)


def _what(operation: dict[str, Any]) -> str:
    """The docstring's first sentence, else FastAPI's summary made from the function's name."""
    first = operation.get("description", "").strip().split("\n\n")[0].replace("\n", " ")
    first = re.split(r"(?<=[.:;])\s", first)[0].rstrip(".:;")
    return first or operation.get("summary", "")


def markdown() -> str:
    out: list[str] = []
    for service, base, app in apps():
        spec, demanded = app.openapi(), scopes(app)
        out += [f"**{service}** (`{base}`)", ""]
        for path, item in spec["paths"].items():
            for method in METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                scope = demanded.get((method.upper(), path), "open")
                what = _what(operation)
                who = "open" if scope == "open" and path in OPEN_EDGE_PATHS | {"/healthz"} else f"`{scope}`"
                if service == "edge_encoder" and scope == "open" and path not in OPEN_EDGE_PATHS:
                    who = "camera token" if "/frames" in path else "edge admin token"
                out += [f"- `{method.upper()} {path}` ({who}): {what}", "  ```bash",
                        f"  {curl(service, base, method, path, operation, spec, scope)}", "  ```"]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def write(readme: Path = ROOT / "README.md") -> None:
    text = readme.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    readme.write_text(text[:start] + "\n" + markdown() + text[end:])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        print(markdown())
