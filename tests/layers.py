"""The layer rules (docs/architecture.md) and a checker that reads every module's imports from its AST.

    facecodec (the codec library)  <-  service_common  <-  each service  <-  devstack
                                                                      (tests, bench, scripts: anything)

Imports inside functions count too: a layer broken lazily is still broken.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("edge_encoder", "cloud_analyzer", "cloud_reconstructor")
WEB_AND_WIRE = ("redis", "grpc", "grpc_health", "grpc_reflection", "httpx", "fastapi", "starlette", "uvicorn",
                "facecoding")  # facecoding: the generated gRPC stubs, a service concern

# package -> top-level modules it must not import
FORBIDDEN: dict[str, frozenset[str]] = {
    "facecodec": frozenset({*WEB_AND_WIRE, "service_common", "devstack", *SERVICES}),
    "service_common": frozenset({"devstack", *SERVICES}),
    **{s: frozenset({"devstack", *(o for o in SERVICES if o != s)}) for s in SERVICES},
    "devstack": frozenset(),
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    imported: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.imported}"


def imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import; relative imports are within the package."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def violations(root: Path, forbidden: dict[str, frozenset[str]] = FORBIDDEN) -> list[Violation]:
    found = []
    for package, banned in forbidden.items():
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for line, module in imports(tree):
                if module.split(".")[0] in banned:
                    found.append(Violation(str(path.relative_to(root)), line, module))
    return found
