"""The dependency pins keep out the versions with known vulnerabilities, and the installed set obeys them.

The lock (``deploy/requirements.lock``) pins every package the nox sessions install, each
with its hashes, within what pyproject.toml declares; the sessions and CI install nothing
that is not checked against it.
"""

from __future__ import annotations

import ast
import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parent.parent
PYPROJECT = ROOT / "pyproject.toml"
NOXFILE = ROOT / "noxfile.py"
CI = ROOT / ".ci" / "run"
LOCK = ROOT / "deploy" / "requirements.lock"
SERVE_LOCK = ROOT / "deploy" / "requirements-serve.lock"
# What the lock is resolved for: CI's CPython 3.11 on x86_64 Linux.
LOCK_ENVIRONMENT = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")
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


def declared() -> list[Requirement]:
    """Every requirement pyproject.toml names: runtime, extras, dependency groups, build."""
    pyproject = tomllib.loads(PYPROJECT.read_text())
    project = pyproject["project"]
    lines = [
        *project["dependencies"],
        *(line for extra in project["optional-dependencies"].values() for line in extra),
        # A group's {include-group = ...} entries name other groups, listed here anyway.
        *(
            line
            for group in pyproject["dependency-groups"].values()
            for line in group
            if isinstance(line, str)
        ),
        *pyproject["build-system"]["requires"],
    ]
    return [Requirement(line) for line in lines]


def locked(lock: Path = LOCK) -> dict[str, tuple[Requirement, list[str]]]:
    """The lock's entries by name: each requirement and its options, read as pip reads them."""
    # pip joins a line ending in a backslash with the next, and drops comments.
    logical = re.sub(r"\\\n", " ", lock.read_text())
    entries: dict[str, tuple[Requirement, list[str]]] = {}
    for line in logical.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        requirement = Requirement(words[0])
        name = canonicalize_name(requirement.name)
        assert name not in entries, f"{name} is locked twice"
        entries[name] = (requirement, words[1:])
    return entries


def test_every_locked_package_is_pinned_exactly_with_its_hashes() -> None:
    entries = locked()
    assert len(entries) > 50, "the lock holds the whole resolved set"
    for name, (requirement, options) in entries.items():
        (spec,) = requirement.specifier
        assert spec.operator == "==", requirement
        assert "*" not in spec.version, requirement
        assert not requirement.marker, f"{requirement}: the lock is for one platform"
        assert options, f"{name} has no hash"
        assert all(HASH.fullmatch(option) for option in options), (name, options)


def test_the_serving_lock_is_the_whole_locks_runtime_part_and_nothing_else() -> None:
    whole, serving = locked(), locked(SERVE_LOCK)
    # The same pins, hashes included, for every package it holds.
    assert {name: whole[name] for name in serving} == serving
    runtime = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    for requirement in map(Requirement, runtime):
        assert canonicalize_name(requirement.name) in serving, requirement
    assert "setuptools" in serving  # the project is built from it, unisolated
    for development_only in ("pytest", "playwright", "matplotlib", "schemathesis", "mypy"):
        assert development_only not in serving, development_only


def test_the_lock_pins_every_declared_dependency_within_its_specifier() -> None:
    entries = locked()
    for requirement in declared():
        if requirement.marker and not requirement.marker.evaluate(LOCK_ENVIRONMENT):
            continue
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{requirement} is not in the lock: run nox -s lock"
        (spec,) = entries[name][0].specifier
        assert requirement.specifier.contains(spec.version, prereleases=True), (
            f"the lock's {name}=={spec.version} is outside {requirement}: run nox -s lock"
        )


def test_the_installed_packages_are_the_locked_versions() -> None:
    installed = 0
    for name, (requirement, _) in locked().items():
        try:
            found = version(name)
        except PackageNotFoundError:
            continue
        installed += 1
        (spec,) = requirement.specifier
        assert found == spec.version, (name, found, spec.version)
    assert installed, "the tests run where the lock was installed"


def test_the_linters_and_the_lock_tool_are_pinned_exactly() -> None:
    pinned = {canonicalize_name(requirement.name): requirement for requirement in declared()}
    entries = locked()
    for name in ("ruff", "mypy", "uv"):
        (spec,) = pinned[name].specifier
        assert spec.operator == "==", pinned[name]
        assert str(entries[name][0]) == f"{name}=={spec.version}", (pinned[name], entries[name])
    for name in ("ruff", "mypy"):  # both run here too (the dev extra)
        (spec,) = pinned[name].specifier
        assert version(name) == spec.version, (pinned[name], version(name))


def strings(call: ast.Call) -> list[str]:
    return [
        arg.value
        for arg in call.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    ]


def session_calls(method: str) -> list[ast.Call]:
    """The noxfile's calls of ``session.<method>(...)``."""
    return [
        node
        for node in ast.walk(ast.parse(NOXFILE.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == method
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "session"
    ]


def test_the_sessions_install_only_from_the_lock_with_hashes_checked() -> None:
    tree = ast.parse(NOXFILE.read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert ROOT / constants["LOCK"] == LOCK
    installs = session_calls("install")
    from_lock = [
        call
        for call in installs
        if any(isinstance(arg, ast.Name) and arg.id == "LOCK" for arg in call.args)
    ]
    assert from_lock, "some session installs the lock itself"
    for call in installs:
        args = strings(call)
        # The project itself is a local folder, with no hash: it comes without dependencies.
        own_project = "--no-deps" in args and "." in args
        assert "--require-hashes" in args or own_project, ast.unparse(call)
    # pip run as a program (``python -m pip download ...``) fetches through the lock too.
    pip_runs = [
        call
        for call in session_calls("run")
        if any(
            (word, then) in {("pip", "install"), ("pip", "download")}
            for word, then in zip(strings(call), strings(call)[1:], strict=False)
        )
    ]
    assert pip_runs, "hypercorn_suite downloads Hypercorn's sdist"
    for call in pip_runs:
        assert "--require-hashes" in strings(call), ast.unparse(call)


def test_ci_installs_nox_from_the_lock_with_hashes_checked() -> None:
    script = re.sub(r"\\\n", " ", CI.read_text())
    installs = [line for line in script.splitlines() if re.search(r"\bpip install\b", line)]
    assert any(re.search(r"\bnox\b", line) for line in installs), installs
    for line in installs:
        assert "--require-hashes" in line, line
        assert "requirements.lock" in line or "$lock" in line, line
