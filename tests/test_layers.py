"""Layers are checked, not remembered: the codec library imports no service, web framework, Redis, gRPC
or HTTP client; service_common imports no service; no service imports another; only devstack, tests,
benches and scripts import devstack (tests/layers.py holds the rules)."""

from __future__ import annotations

from pathlib import Path

from tests.layers import FORBIDDEN, violations

ROOT = Path(__file__).resolve().parent.parent


def test_the_layers_hold() -> None:
    assert all((ROOT / package).is_dir() for package in FORBIDDEN)
    assert [str(v) for v in violations(ROOT)] == []


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_finds_each_kind_of_violation(tmp_path: Path) -> None:
    write(tmp_path, {
        "facecodec/__init__.py": "",
        "facecodec/ok.py": "import numpy\nfrom facecodec import bitstream\nfrom . import sibling\n",
        "facecodec/web.py": "import fastapi\n",
        "facecodec/sub/lazy.py": "def f():\n    from redis.lock import Lock\n",
        "facecodec/up.py": "from service_common.ids import ID\n",
        "service_common/guard.py": "from cloud_analyzer.store import Store\n",
        "service_common/fine.py": "import redis\nimport facecodec.bitstream\n",
        "edge_encoder/api.py": "import cloud_reconstructor.api\nimport service_common.http\n",
        "cloud_analyzer/run.py": "from devstack.stack import Stack\n",
        "cloud_reconstructor/api.py": "import facecodec\n",
        "devstack/stack.py": "import edge_encoder\nimport cloud_analyzer\n",
    })
    found = {(v.path, v.imported) for v in violations(tmp_path)}
    assert found == {
        ("facecodec/web.py", "fastapi"),
        ("facecodec/sub/lazy.py", "redis.lock"),
        ("facecodec/up.py", "service_common.ids"),
        ("service_common/guard.py", "cloud_analyzer.store"),
        ("edge_encoder/api.py", "cloud_reconstructor.api"),
        ("cloud_analyzer/run.py", "devstack.stack"),
    }


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    write(tmp_path, {"facecodec/a.py": "import numpy\n", "service_common/b.py": "import facecodec.a\n"})
    rules = {package: FORBIDDEN[package] for package in ("facecodec", "service_common")}
    assert violations(tmp_path, rules) == []
