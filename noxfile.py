"""Sessions for developers and CI: ``nox -s tests``, ``lint``, ``typecheck``, ``serve``.

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
def drills(session: nox.Session) -> None:
    """Fault drills on a local three-node cluster (ports 9280-9282), longer than in ``tests``.

    Kills a node under load, pauses one (SIGSTOP) with hedging off and on, and
    soaks 50,000 requests with clients hanging up; each prints its figures.
    """
    install(session)
    session.run(
        "pytest",
        "-m",
        "drill",
        "-s",
        "-p",
        "no:logging",
        "tests/test_drills.py",
        *session.posargs,
        env={
            "TRIO_BOOKS_DRILL_SECONDS": "30",
            "TRIO_BOOKS_SOAK_REQUESTS": "50000",
            # The shared fixtures also want the session's single node.
            "TRIO_BOOKS_ES_URLS": os.environ.get("TRIO_BOOKS_ES_URLS", "http://127.0.0.1:9200"),
        },
    )


@nox.session
def transport_ab(session: nox.Session) -> None:
    """A/B of stock httpx against the trio_books transport with wrk (needs ``wrk`` installed).

    Arguments after ``--`` go to ``tools/transport_ab.py`` (e.g. ``-- --rounds 3``).
    """
    install(session)
    session.run("python", "tools/transport_ab.py", *session.posargs)
    session.run("python", "tools/transport_cpu.py", "--calls", "10000")


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
