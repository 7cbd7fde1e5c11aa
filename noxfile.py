"""Sessions for developers and CI: ``nox -s tests``, ``lint``, ``typecheck``, ``serve``, ``demos``,
``bench``, ``bench_load``, and the hardening drills: ``fuzz``, ``soak``, ``drills`` and ``audit``.

Every session installs what it needs into its own virtualenv; ``tests`` and
``serve`` also start a local Elasticsearch through the project's CLI unless
``TRIO_BOOKS_ES_URLS`` points at one. Arguments after ``--`` go to the tool
(pytest for ``tests``), for example ``nox -s tests -- -k search``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import nox

nox.needs_version = ">=2024.4"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# The browser test drives Debian's Chromium; Playwright never downloads its own.
CHROMIUM = "/usr/bin/chromium"

# The test session's node runs apart from a developer's usual 9200.
TEST_ES_PORT = int(os.environ.get("TRIO_BOOKS_TEST_ES_PORT", "9250"))
SERVE_ES_PORT = 9200


def install(session: nox.Session, extras: str = "dev,bench") -> None:
    session.install("-e", f".[{extras}]")


def ensure_wrk(session: nox.Session) -> None:
    """The benchmark's load generator, from Debian's packages, installed when missing."""
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        session.error("the benchmark needs wrk: sudo apt-get install wrk")
    session.run("apt-get", "update", "-q", external=True)
    session.run("apt-get", "install", "-y", "-q", "wrk", external=True)


def ensure_chromium(session: nox.Session) -> None:
    """Install Debian's ``chromium`` for the browser test, when it is missing."""
    if os.path.exists(CHROMIUM):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.error(f"the browser test needs {CHROMIUM}: install Debian's chromium package")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-q", external=True, env=env)
    session.run("apt-get", "install", "-y", "-q", "chromium", external=True, env=env)


def ensure_nginx(session: nox.Session) -> None:
    """Install Debian's nginx, the TLS proxy that the API key tests run, when it is missing."""
    # /usr/sbin is often missing from a non-root PATH.
    if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        session.error("the API key tests need nginx: sudo apt-get install nginx")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-q", external=True, env=env)
    session.run("apt-get", "install", "-y", "-q", "nginx", external=True, env=env)


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
    """Run the test suite against a real Elasticsearch (the search page in Chromium; the
    benchmark's harness test needs wrk; the API key tests run nginx as a TLS proxy)."""
    install(session)
    ensure_chromium(session)
    ensure_wrk(session)
    ensure_nginx(session)
    with elasticsearch(session, TEST_ES_PORT) as urls:
        session.run("pytest", *session.posargs, env={"TRIO_BOOKS_ES_URLS": urls})


@nox.session
def fault_drills(session: nox.Session) -> None:
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
        "tests/test_fault_drills.py",
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

    Arguments after ``--`` go to ``python -m trio_books.bench.transport_ab`` (e.g. ``-- --rounds 3``).
    """
    install(session)
    session.run("python", "-m", "trio_books.bench.transport_ab", *session.posargs)
    session.run("python", "-m", "trio_books.bench.transport_cpu", "--calls", "10000")


@nox.session
def serve(session: nox.Session) -> None:
    """Start a local Elasticsearch (left running afterwards), load a demo catalogue, serve on port 5000.

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
        "--demo-catalogue",
        *session.posargs,
        env={"TRIO_BOOKS_ES_URLS": urls},
    )


@nox.session
def demos(session: nox.Session) -> None:
    """Run every narrated demo against a real Elasticsearch (or the ones named after ``--``)."""
    install(session)
    names = session.posargs or [
        "fanout",
        "deadlines",
        "errors",
        "hedging",
        "backpressure",
        "task-tree",
    ]
    with elasticsearch(session, TEST_ES_PORT) as urls:
        for name in names:
            session.run(
                "python", "-m", "trio_books", "demo", name, env={"TRIO_BOOKS_ES_URLS": urls}
            )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark the builds and their peers; ``nox -s bench -- --quick`` for a short run.

    Arguments after ``--`` go to ``python -m trio_books bench`` (e.g. ``-- --workers 2``).
    Results go to ``bench-results/<time>/`` unless ``--out`` says otherwise.
    """
    install(session, "bench")
    ensure_wrk(session)
    with elasticsearch(session, SERVE_ES_PORT) as urls:
        session.run(
            "python",
            "-m",
            "trio_books",
            "bench",
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
def bench_load(session: nox.Session) -> None:
    """The loader's books/s against the same _bulk bodies posted by parallel curl (not a test).

    Arguments go to ``python -m trio_books bench-load``, e.g. ``nox -s bench_load -- --count 100000``.
    """
    install(session)
    with elasticsearch(session, SERVE_ES_PORT) as urls:
        session.run(
            "python",
            "-m",
            "trio_books",
            "bench-load",
            *session.posargs,
            env={"TRIO_BOOKS_ES_URLS": urls},
        )


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
