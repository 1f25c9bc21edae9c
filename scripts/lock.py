"""Resolve every dependency of the project afresh and write the lock file, constraints.txt.

    python scripts/lock.py            # or `make lock`

The lock pins one version of every distribution that `pip install -e '.[dev,bench]'` brings, as pip
resolves them today from the registries CI reaches, for Linux x86-64 and CPython 3.11 (the machines
CI and the services run on). Every install in the project goes through it (`pip install -c
constraints.txt ...`: Makefile, .ci/run, Dockerfile), so a fresh clone gets exactly the versions the
tests and benchmarks were run with. `onnxruntime-gpu` (the `gpu` extra, which replaces onnxruntime)
is resolved on its own and pinned alone: its CUDA wheels are the GPU image's business.

pip resolves without installing (`--dry-run --report`): no virtual environment is made, so a lock
takes well under a minute. tests/test_lock.py checks that the lock covers pyproject.toml and that
the environment tests run in matches it.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "constraints.txt"
PROJECT = "facecodec"
# Resolved with the project; pip itself is pinned so that the installer is reproducible too.
TOOLS = ("pip",)


def canonical(name: str) -> str:
    """PEP 503 normalised name: what pip compares."""
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(*requirements: str) -> dict[str, str]:
    """What pip would install for `requirements` into an empty environment: {name: version}."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--report", str(report), *requirements], check=True, cwd=tmp)
        installs = json.loads(report.read_text())["install"]
    return {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}


def main() -> None:
    if sys.version_info[:2] != (3, 11) or platform.machine() != "x86_64" or sys.platform != "linux":
        print(f"warning: the lock is meant for Linux x86-64 / CPython 3.11, this is {sys.platform} "
              f"{platform.machine()} / {platform.python_version()}", file=sys.stderr)
    pins = resolve(f"{ROOT}[dev,bench]", *TOOLS)
    pins.pop(PROJECT, None)
    pins["onnxruntime-gpu"] = resolve("onnxruntime-gpu")["onnxruntime-gpu"]
    header = [
        "# The lock file: one version of every distribution the project installs (scripts/lock.py,",
        "# `make lock`). Resolved for Linux x86-64 / CPython 3.11. Do not edit by hand: re-lock, run the",
        "# tests and the benches, commit both (README, 'Upgrading dependencies').",
    ]
    LOCK.write_text("\n".join(header + [f"{name}=={version}" for name, version in sorted(pins.items())]) + "\n")
    print(f"{LOCK.relative_to(ROOT)}: {len(pins)} pins")


if __name__ == "__main__":
    main()
