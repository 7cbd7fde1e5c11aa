"""Sessions for developers and CI: ``nox -s tests``, ``lint``, ``typecheck``, ``serve``, and the
hardening drills: ``fuzz``, ``soak``, ``drills`` and ``audit``.

Every session installs what it needs into its own virtualenv; ``tests`` and
``serve`` also start a local Elasticsearch through the project's CLI unless
``TRIO_BOOKS_ES_URLS`` points at one. Arguments after ``--`` go to the tool
(pytest for ``tests``), for example ``nox -s tests -- -k search``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import nox

nox.needs_version = ">=2024.4"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# The test session's node runs apart from a developer's usual 9200.
TEST_ES_PORT = 9250
SERVE_ES_PORT = 9200


def install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


def drill(session: nox.Session, *names: str) -> None:
    """Run drills against a real Elasticsearch (``-- --quick`` for the short versions)."""
    install(session)
    with elasticsearch(session, TEST_ES_PORT) as urls:
        for name in names:
            session.run(
                "python",
                "-m",
                "trio_books",
                "drill",
                name,
                *session.posargs,
                env={"TRIO_BOOKS_ES_URLS": urls},
            )


@contextmanager
def elasticsearch(session: nox.Session, port: int) -> Iterator[str]:
    """The Elasticsearch URLs to use: ``TRIO_BOOKS_ES_URLS``, or a local node we start and stop."""
    if configured := os.environ.get("TRIO_BOOKS_ES_URLS"):
        session.log(f"using TRIO_BOOKS_ES_URLS={configured}")
        yield configured
        return
    cli = ["python", "-m", "trio_books", "es"]
    status = session.run(*cli, "status", "--port", str(port), success_codes=[0, 1], silent=True)
    already_running = isinstance(status, str) and "not running" not in status
    session.run(*cli, "start", "--port", str(port))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if not already_running:
            session.run(*cli, "stop", "--port", str(port))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against a real Elasticsearch."""
    install(session)
    with elasticsearch(session, TEST_ES_PORT) as urls:
        session.run("pytest", *session.posargs, env={"TRIO_BOOKS_ES_URLS": urls})


@nox.session
def serve(session: nox.Session) -> None:
    """Start a local Elasticsearch (left running afterwards), prepare the index, serve on port 5000.

    Arguments after ``--`` go to ``python -m trio_books serve`` (e.g. ``-- --workers 2``).
    """
    install(session)
    urls = os.environ.get("TRIO_BOOKS_ES_URLS")
    if not urls:
        session.run("python", "-m", "trio_books", "es", "start", "--port", str(SERVE_ES_PORT))
        urls = f"http://127.0.0.1:{SERVE_ES_PORT}"
    session.run(
        "python",
        "-m",
        "trio_books",
        "serve",
        "--ensure-index",
        *session.posargs,
        env={"TRIO_BOOKS_ES_URLS": urls},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules (with the async checks) and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package and this noxfile."""
    install(session)
    session.run("mypy", "--strict", "trio_books", *session.posargs)
    session.run("mypy", "--strict", "noxfile.py")


@nox.session
def fuzz(session: nox.Session) -> None:
    """schemathesis from the OpenAPI document against a real server: at least 2,000 requests."""
    drill(session, "fuzz")


@nox.session
def soak(session: nox.Session) -> None:
    """Steady mixed load (``-- --duration 600``, the default); nothing may creep."""
    drill(session, "soak")


@nox.session
def drills(session: nox.Session) -> None:
    """Overload, slow clients, shutdown and soak drills; ``-- --quick`` for CI's versions."""
    drill(session, "overload", "slow-clients", "shutdown", "soak")


@nox.session
def audit(session: nox.Session) -> None:
    """pip-audit over the resolved dependency set (the package with its dev extra)."""
    install(session)
    session.install("pip-audit>=2.7")
    # --skip-editable: trio_books itself is not on PyPI; every dependency is audited.
    # --strict: a dependency that could not be looked up fails the audit instead of
    # being skipped, so an unreachable vulnerability service never passes as "none found".
    session.run(
        "pip-audit", "--strict", "--skip-editable", "--progress-spinner", "off", *session.posargs
    )
