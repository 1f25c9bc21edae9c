"""The lock file (constraints.txt) covers what pyproject.toml declares, and this environment is the locked one.

A dependency added to pyproject.toml without `make lock` fails here, and so does a development
environment that drifted from the lock (`make setup` reinstalls when constraints.txt changes).
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "facecodec"


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


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
