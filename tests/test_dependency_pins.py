"""The dependency pins keep out the versions with known vulnerabilities, and the installed set obeys them."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"
# A package the service parses untrusted input with, and its last version with a known hole.
VULNERABLE = [
    ("h11", "0.15.0"),  # CVE-2025-43859: chunked-encoding request smuggling
    ("orjson", "3.11.5"),  # unbounded recursion on deeply nested JSON
    ("h2", "4.2.0"),  # older than the 4.3 required while Hypercorn can speak HTTP/2
]


def requirements() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    found = (Requirement(line) for line in project["dependencies"])
    return {requirement.name.lower(): requirement for requirement in found}


@pytest.mark.parametrize(("name", "vulnerable"), VULNERABLE)
def test_a_vulnerable_version_is_refused_and_the_installed_one_is_allowed(
    name: str, vulnerable: str
) -> None:
    requirement = requirements()[name]
    assert not requirement.specifier.contains(vulnerable), requirement
    assert requirement.specifier.contains(version(name)), (requirement, version(name))


def test_the_linters_are_pinned_exactly_and_alike() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    dev = {
        requirement.name.lower(): requirement
        for requirement in (Requirement(line) for line in project["optional-dependencies"]["dev"])
    }
    for name in ("ruff", "mypy"):
        (spec,) = dev[name].specifier
        assert spec.operator == "==", dev[name]
        assert spec.version == version(name), (dev[name], version(name))
    noxfile = (PYPROJECT.parent / "noxfile.py").read_text()
    assert f'RUFF = "{dev["ruff"]}"' in noxfile
