"""The lock file (constraints.txt) covers what pyproject.toml declares, and this environment is the locked one.

A dependency added to pyproject.toml without `make lock` fails here, and so does a development
environment that drifted from the lock (`make setup` reinstalls when constraints.txt changes).
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "facecodec"


def pins_in(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def locked() -> dict[str, str]:
    """Every exact pin: the resolver's lock, and the few installed without their own pins (nodeps.txt)."""
    return {**pins_in("constraints.txt"), **pins_in("nodeps.txt")}


def test_nodeps_pins_are_not_also_in_the_lock_and_their_dependencies_are_declared() -> None:
    lock, nodeps = pins_in("constraints.txt"), pins_in("nodeps.txt")
    assert not set(nodeps) & set(lock), "a distribution is pinned twice"
    for name in nodeps:
        dist = metadata.distribution(name)
        assert dist.version == nodeps[name]
        for requirement in map(Requirement, dist.requires or []):
            assert canonicalize_name(requirement.name) in lock, f"{name} needs {requirement.name}: declare it"


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += [Requirement(r) for r in extra]
    return [r for r in requirements if canonicalize_name(r.name) != PROJECT]


def test_every_declared_dependency_is_locked_within_its_range() -> None:
    pins = locked()
    for requirement in declared():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is declared in pyproject.toml but not locked: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}: run `make lock`")


def test_this_environment_has_the_locked_versions() -> None:
    pins = locked()
    drifted = []
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        # A local label (torch 2.14.1+cpu from PyTorch's index in the images) is the same release.
        if name in pins and dist.version.split("+")[0] != pins[name]:
            drifted.append(f"{name} {dist.version} (locked {pins[name]})")
    assert not drifted, f"installed versions differ from constraints.txt: {', '.join(drifted)}; run `make setup`"


FIRST_PARTY = {"facecodec", "service_common", "edge_encoder", "cloud_analyzer", "cloud_reconstructor", "devstack",
               "facecoding", "tests", "bench", "scripts"}
SERVICE_CODE = ("service_common", "edge_encoder", "cloud_analyzer", "cloud_reconstructor")
# Imported by benches but not installed by `make setup`: the bench extra's modules (by distribution), and
# one-off comparisons whose docstrings say to install them by hand (not project dependencies).
NOT_INSTALLED = {"faiss": "faiss-cpu", "usearch": "usearch"}
ONE_OFF = {"dlib", "face_recognition_models", "ai_edge_litert"}  # bench/frontend_compare.py, recogniser_compare.py


def imported_modules(folder: Path) -> set[str]:
    """Top-level names of every absolute import in a folder's modules, function-level imports included."""
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    local = {p.stem for p in folder.glob("*.py")}  # bench/ and scripts/ import their sibling scripts
    return {n for n in names - local - FIRST_PARTY if n not in sys.stdlib_module_names}


def distributions_of(modules: set[str]) -> dict[str, set[str]]:
    by_module = {**metadata.packages_distributions(), **{m: [d] for m, d in NOT_INSTALLED.items()}}
    modules = modules - ONE_OFF
    unknown = sorted(m for m in modules if m not in by_module)
    assert not unknown, f"imported but installed by no distribution: {unknown}"
    return {m: {canonicalize_name(d) for d in by_module[m]} for m in modules}


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    anywhere = runtime | {canonicalize_name(r.name) for r in declared()} | set(pins_in("nodeps.txt"))
    for folder in ("facecodec", "devstack", "bench", "scripts", "tests", *SERVICE_CODE):
        # The service images install no extra: what services import must be a runtime dependency.
        allowed, what = (runtime, "as a runtime dependency") if folder in SERVICE_CODE else (anywhere, "")
        for module, dists in distributions_of(imported_modules(ROOT / folder)).items():
            assert dists & allowed, f"{folder}/ imports {module} ({', '.join(sorted(dists))}), undeclared {what}"
