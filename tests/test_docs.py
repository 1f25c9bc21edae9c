"""Docs match the code: README lists every service setting with its current default."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_settings_table_is_current() -> None:
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "scripts" / "settings_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    for line in module.markdown().splitlines():
        if line.startswith("| `"):
            assert line in readme, f"README.md is stale; paste `python scripts/settings_table.py`: missing {line}"


def test_readme_has_exactly_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == ["make demo", "make test"]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_lists_every_endpoint_with_a_curl_example() -> None:
    reference = _script("api_reference")
    readme = (ROOT / "README.md").read_text()
    block = readme.split(reference.BEGIN, 1)[1].split(reference.END, 1)[0]
    assert block == "\n" + reference.markdown(), \
        "README.md's endpoint list is stale: python scripts/api_reference.py --write"
    endpoints = [line for line in block.splitlines() if line.startswith("- `")]
    examples = [line for line in block.splitlines() if line.strip().startswith("curl ")]
    assert len(endpoints) == len(examples) > 30
