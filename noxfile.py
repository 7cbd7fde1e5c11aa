"""Sessions for developers and CI: ``nox -s tests``, ``jaeger``, ``compat``, ``lint``,
``typecheck``, ``serve``, ``demos``, ``bench``, ``bench_load``, and the hardening drills:
``fuzz``, ``soak``, ``drills`` and ``audit``; ``lock`` refreshes the lock file the others
install from.

Every session installs what it needs into its own virtualenv, at the versions of
``deploy/requirements.lock``, each file checked against its hash; ``tests`` and
``serve`` also start a local Elasticsearch through the project's CLI unless
``TRIO_BOOKS_ES_URLS`` points at one. Arguments after ``--`` go to the tool
(pytest for ``tests``), for example ``nox -s tests -- -k search``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nox

nox.needs_version = ">=2024.4"
nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# The browser test drives Debian's Chromium; Playwright never downloads its own.
CHROMIUM = "/usr/bin/chromium"
# Every package a session installs, pinned with its hashes, resolved for the Python and
# platform below (CI's): `nox -s lock` writes it from pyproject.toml.
LOCK = "deploy/requirements.lock"
# Serving only: the package's own dependencies and what builds it, at the same versions.
SERVE_LOCK = "deploy/requirements-serve.lock"
LOCK_PYTHON = "3.11"
LOCK_PLATFORM = "x86_64-unknown-linux-gnu"

# The test session's node runs apart from a developer's usual 9200.
TEST_ES_PORT = int(os.environ.get("TRIO_BOOKS_TEST_ES_PORT", "9250"))
SERVE_ES_PORT = 9200


def install(session: nox.Session) -> None:
    """The whole lock, then the project itself, editable.

    ``--require-hashes`` makes pip refuse any file whose hash the lock does not list,
    and any package it does not pin. The project is a local folder, which has no hash:
    it goes in without its dependencies (the lock brought them) and is built by the
    lock's setuptools rather than one fetched for an isolated build.
    """
    session.install("--require-hashes", "-r", LOCK)
    session.install("--no-deps", "--no-build-isolation", "-e", ".")


def install_serving(session: nox.Session) -> None:
    """What serving needs and nothing else (``deploy/requirements-serve.lock``), then the project."""
    session.install("--require-hashes", "-r", SERVE_LOCK)
    session.install("--no-deps", "--no-build-isolation", "-e", ".")


def canonical(name: str) -> str:
    """A package name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries(lock: str, names: tuple[str, ...]) -> str:
    """The lines of ``names`` in the lock's text (each ``name==version`` with its hashes)."""
    entries: dict[str, list[str]] = {}
    current: list[str] = []
    for line in lock.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        if not line[0].isspace():
            current = entries.setdefault(canonical(line.split("==")[0]), [])
        current.append(line)
    missing = [name for name in names if name not in entries]
    if missing:
        raise LookupError(f"{LOCK} pins no {', '.join(missing)}: run nox -s lock")
    return "".join(line + "\n" for name in names for line in entries[name])


def locked_file(session: nox.Session, *names: str) -> str:
    """A requirements file, in the session's tmp, with the lock's lines for ``names``."""
    path = Path(session.create_tmp(), "locked.txt")
    try:
        path.write_text(lock_entries(Path(LOCK).read_text(), names))
    except LookupError as error:
        session.error(str(error))
    return str(path)


def install_locked(session: nox.Session, *names: str) -> None:
    """Only ``names`` from the lock, hash-checked: for tools with no dependencies (ruff, uv).

    Should one gain a dependency, pip refuses it (hash-checking mode takes nothing the
    file does not pin) rather than resolving it outside the lock.
    """
    session.install("--require-hashes", "-r", locked_file(session, *names))


def ensure_debian(
    session: nox.Session,
    package: str,
    present: bool,
    needed_for: str,
    *options: str,
    required: bool = False,
) -> None:
    """Install Debian's *package* when it is not *present*: as root, with apt-get.

    Without root, a package that only some tests need is left out: those tests skip
    and say how to install it (tests/tools.py); a *required* one stops the session.
    """
    if present:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        advice = f"{needed_for} needs {package}: sudo apt-get install {package}"
        if required:
            session.error(advice)
        session.warn(f"{advice}; they are skipped until then")
        return
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-q", external=True, env=env)
    session.run("apt-get", "install", "-y", "-q", *options, package, external=True, env=env)


def ensure_wrk(session: nox.Session, *, required: bool = False) -> None:
    """The benchmark's load generator (some tests and drills drive it too)."""
    present = shutil.which("wrk") is not None
    ensure_debian(session, "wrk", present, "the benchmark", required=required)


def ensure_chromium(session: nox.Session) -> None:
    """The browser the search page's test drives."""
    ensure_debian(session, "chromium", os.path.exists(CHROMIUM), "the browser test")


def ensure_nginx(session: nox.Session) -> None:
    """The TLS proxy that the API key tests run."""
    # /usr/sbin is often missing from a non-root PATH.
    present = shutil.which("nginx") is not None or os.path.exists("/usr/sbin/nginx")
    ensure_debian(session, "nginx", present, "the API key tests")


def ensure_prometheus(session: nox.Session) -> None:
    """The scraper the metrics tests run (never started as a system service: the test starts it)."""
    present = shutil.which("prometheus") is not None
    # Without the node exporter it recommends: nothing here reads the machine's own figures.
    ensure_debian(session, "prometheus", present, "the metrics tests", "--no-install-recommends")


def ensure_curl(session: nox.Session) -> None:
    """What runs the compose file's healthcheck in its test."""
    ensure_debian(session, "curl", shutil.which("curl") is not None, "the compose file's test")


def ensure_systemd_analyze(session: nox.Session) -> None:
    """What checks the systemd unit in deploy/ (a container may lack systemd)."""
    present = shutil.which("systemd-analyze") is not None
    ensure_debian(session, "systemd", present, "the systemd unit's test")


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
@nox.parametrize("shell", ["lean", "hypercorn"])
def tests(session: nox.Session, shell: str) -> None:
    """Run the test suite against a real Elasticsearch (the search page in Chromium; the
    benchmark's harness test needs wrk; the API key tests run nginx as a TLS proxy; the
    metrics tests run Prometheus).

    Once for each of the Trio build's connection shells (``SERVER_SHELL``): every
    test and drill that serves the Trio build serves it on that shell. One of them:
    ``nox -s "tests(shell='lean')"``.
    """
    install(session)
    ensure_chromium(session)
    ensure_wrk(session)
    ensure_nginx(session)
    ensure_prometheus(session)
    ensure_systemd_analyze(session)
    ensure_curl(session)
    with elasticsearch(session, TEST_ES_PORT) as urls:
        session.run(
            "pytest",
            *session.posargs,
            env={"TRIO_BOOKS_ES_URLS": urls, "TRIO_BOOKS_SERVER_SHELL": shell},
        )


# Jaeger's version, and every Go module its build fetches (by hash, in go.sum).
JAEGER_MODULE = Path("tests/jaeger")
JAEGER_PACKAGE = "github.com/jaegertracing/jaeger/cmd/jaeger"


def jaeger_version() -> str:
    """The Jaeger release that ``tests/jaeger/go.mod`` requires (e.g. ``v1.75.0``)."""
    text = (JAEGER_MODULE / "go.mod").read_text()
    found = re.search(r"^\s*github\.com/jaegertracing/jaeger (v[0-9.]+)", text, re.MULTILINE)
    if found is None:
        raise LookupError(f"{JAEGER_MODULE}/go.mod requires no github.com/jaegertracing/jaeger")
    return found.group(1)


def build_jaeger(session: nox.Session) -> str:
    """Jaeger's binary, built from ``tests/jaeger`` once per version, kept in the session's folder.

    Go builds it from source: ``go install`` refuses Jaeger's own module (its replace
    directives), so a module of ours names it as a tool. The first build fetches
    about 1.3 GB of modules and takes minutes and 2 GB of memory on two cores; Go's
    caches make a rebuild (after ``nox -s jaeger --reuse-venv=no``) a matter of linking.
    """
    if shutil.which("go") is None:
        session.error(
            "nox -s jaeger builds Jaeger from source and needs Go 1.24 or later: "
            "sudo apt-get install golang-go, or Go's own release"
        )
    version = jaeger_version()
    binary = Path(session.bin, f"jaeger-{version}")
    if binary.exists():
        session.log(f"Jaeger {version}: {binary}")
        return str(binary)
    session.log(f"building Jaeger {version} from {JAEGER_MODULE} (minutes, the first time)")
    partial = binary.with_name(binary.name + ".partial")
    session.run(
        "go",
        "-C",
        str(JAEGER_MODULE),
        "build",
        "-trimpath",
        "-buildvcs=false",
        "-o",
        str(partial.resolve()),
        JAEGER_PACKAGE,
        external=True,
    )
    # Renamed once whole: a build stopped halfway is never taken for a finished one.
    partial.rename(binary)
    return str(binary)


@nox.session
def jaeger(session: nox.Session) -> None:
    """Send the service's traces to a real Jaeger (``tests/test_jaeger.py``, both builds).

    Builds Jaeger from ``tests/jaeger/go.mod`` the first time (Go needed), starts it
    on free loopback ports for each test, and asks its query API for each search's
    trace. ``nox -s tests`` deselects these tests and checks the same export against
    a receiver in the test process. Arguments after ``--`` go to pytest.
    """
    install(session)
    binary = build_jaeger(session)
    with elasticsearch(session, TEST_ES_PORT) as urls:
        session.run(
            "pytest",
            "tests/test_jaeger.py",
            f"--jaeger={binary}",
            *session.posargs,
            env={"TRIO_BOOKS_ES_URLS": urls},
        )


@nox.session
def tests_under_load(session: nox.Session) -> None:
    """The whole suite, both shells, several times in a row beside a CPU hog on every core.

    ``stress-ng --cpu 0`` (Debian's package; one busy worker per core) runs for
    the whole session, so every test meets a machine whose cores are taken: a
    test that passes only on an idle machine fails here. Stops at the first
    failure. ``nox -s tests_under_load -- 3`` (the default); further arguments
    go to pytest.
    """
    runs, pytest_args = 3, list(session.posargs)
    if pytest_args and pytest_args[0].isdigit():
        runs = int(pytest_args.pop(0))
    install(session)
    ensure_chromium(session)
    ensure_wrk(session)
    ensure_nginx(session)
    ensure_prometheus(session)
    ensure_systemd_analyze(session)
    ensure_curl(session)
    ensure_debian(
        session,
        "stress-ng",
        shutil.which("stress-ng") is not None,
        "this session",
        required=True,
    )
    hog = subprocess.Popen(["stress-ng", "--cpu", "0", "--quiet"])
    try:
        with elasticsearch(session, TEST_ES_PORT) as urls:
            for run in range(1, runs + 1):
                for shell in ("lean", "hypercorn"):
                    session.log(f"run {run} of {runs}, shell {shell}, beside stress-ng --cpu 0")
                    session.run(
                        "pytest",
                        *pytest_args,
                        env={
                            "TRIO_BOOKS_ES_URLS": urls,
                            "TRIO_BOOKS_SERVER_SHELL": shell,
                            # The robustness run skips nothing.
                            "TRIO_BOOKS_REQUIRE_TOOLS": "1",
                        },
                    )
    finally:
        hog.terminate()
        hog.wait()


# The engines the compatibility run tests beside the suite's Elasticsearch 8.19: engine,
# version, the first of the node ports its run uses (the session's node, the next two,
# and +10 for the secured one), and whether the secured tests run against it too.
# Elasticsearch: the newest 9.x whose test distribution resolves. OpenSearch: the
# newest 2.x; its security plugin for 2.19.6 does not resolve, so it runs plain.
COMPAT_ENGINES = (
    ("elasticsearch", "9.5.0", 9350, True),
    ("opensearch", "2.19.6", 9450, False),
)
# What the compatibility run tests, as the README's table names it, and the test files.
COMPAT_TESTS = {
    "API contract, both builds over HTTP": (
        "test_api_http.py",
        "test_search_api.py",
        "test_api_errors.py",
    ),
    "queries, mapping, facets, suggestions": ("test_elasticsearch_roundtrip.py",),
    "highlights, paging, cursors, completion, similar books": (
        "test_search_paging.py",
        "test_complete_similar.py",
    ),
    "loader: alias swap, 429 pushback, cancelling": ("test_loader.py", "test_loader_failures.py"),
    "deadlines and partial answers": ("test_deadlines.py",),
}
COMPAT_SECURE_TESTS = {
    "secured: TLS, basic auth, bearer token, API key": (
        "test_secure_cluster.py",
        "test_local_secure.py",
    ),
}


def compat_table(rows: list[tuple[str, str, str, Counter[str]]]) -> str:
    """The README's compatibility table: engine, version, what was tested, result."""
    lines = [
        "| engine | version | what was tested | result |",
        "| --- | --- | --- | --- |",
    ]
    for engine, version, what, counts in rows:
        failed = counts["failed"] + counts["error"]
        result = f"{counts['passed']} passed" + (f", **{failed} failed**" if failed else "")
        if counts["skipped"]:
            result += f", {counts['skipped']} skipped"
        lines.append(f"| {engine} | {version} | {what} | {result} |")
    return "\n".join(lines)


def junit_outcomes(report: Path) -> dict[str, Counter[str]]:
    """Outcomes per test file in a pytest JUnit XML report (``"*"``: every test's)."""
    outcomes: dict[str, Counter[str]] = {"*": Counter()}
    for test, outcome in junit_verdicts(report).items():
        module = test.partition("::")[0].split(".")
        name = next((part for part in module if part.startswith("test_")), "?") + ".py"
        outcomes.setdefault(name, Counter())[outcome] += 1
        outcomes["*"][outcome] += 1
    return outcomes


@nox.session
def compat(session: nox.Session) -> None:
    """The API contract, loader and deadline tests against Elasticsearch 9 and OpenSearch 2.

    Each engine runs on its own ports, started and stopped by the project's own
    runner; Elasticsearch 9 also runs the secured tests (TLS and credentials).
    Prints the README's compatibility table, also written to
    ``.nox/compat/tmp/compat.md``; fails when any test failed, or (without
    arguments) when a group ran no test. ``-- -k word`` narrows every run. The
    suite's default engine, Elasticsearch 8.19, is ``nox -s tests``'s.
    """
    install(session)
    ensure_nginx(session)
    rows: list[tuple[str, str, str, Counter[str]]] = []
    failed = False
    for engine, version, port, secure in COMPAT_ENGINES:
        groups = {**COMPAT_TESTS, **(COMPAT_SECURE_TESTS if secure else {})}
        report = Path(session.create_tmp()) / f"{engine}-{version}.xml"
        cli = ["python", "-m", "trio_books", "es"]
        status = session.run(*cli, "status", "--port", str(port), success_codes=[0, 1], silent=True)
        already_running = isinstance(status, str) and "not running" not in status
        session.run(*cli, "start", "--engine", engine, "--version", version, "--port", str(port))
        try:
            session.run(
                "pytest",
                f"--junitxml={report}",
                *(f"tests/{name}" for files in groups.values() for name in files),
                *session.posargs,
                env={
                    "TRIO_BOOKS_ES_URLS": f"http://127.0.0.1:{port}",
                    "TRIO_BOOKS_TEST_ES_PORT": str(port),
                    "TRIO_BOOKS_TEST_ENGINE": engine,
                    "TRIO_BOOKS_TEST_ENGINE_VERSION": version,
                },
                # 1 (tests failed) still makes the table; it fails the session after.
                success_codes=[0, 1],
            )
        finally:
            if not already_running:
                session.run(*cli, "stop", "--port", str(port))
        outcomes = junit_outcomes(report)
        everything = outcomes["*"]
        failed = failed or bool(everything["failed"] + everything["error"])
        title = {"elasticsearch": "Elasticsearch", "opensearch": "OpenSearch"}[engine]
        for what, files in groups.items():
            counts: Counter[str] = sum((outcomes.get(name, Counter()) for name in files), Counter())
            rows.append((title, version, what, counts))
            failed = failed or (not session.posargs and not counts["passed"])
    table = compat_table(rows)
    Path(session.create_tmp(), "compat.md").write_text(table + "\n")
    print(table)
    if failed:
        session.error("some compatibility tests failed or did not run (see the table)")


def junit_verdicts(report: Path) -> dict[str, str]:
    """Each test's outcome (passed, failed, error, skipped) in a JUnit XML report."""
    verdicts = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = {child.tag for child in case} & {"failure", "error", "skipped"}
        verdict = {"failure": "failed"}.get(min(kinds), min(kinds)) if kinds else "passed"
        verdicts[f"{case.get('classname')}::{case.get('name')}"] = verdict
    return verdicts


# The sdist's tests that concern the trio server (tests/protocol and tests/asyncio
# need pytest-asyncio and reach no trio shell).
HYPERCORN_SUITE = ("tests/trio", "tests/e2e")


# Hypercorn's tests that the lean shell fails by design, and why.
LEAN_SHELL_REFUSES = {
    "tests.trio.test_sanity::test_http2_request": (
        "the lean shell serves HTTP/1.1 only and refuses cleartext HTTP/2 "
        "(trio_books/http1_only.py); the service's Hypercorn shells refuse it too"
    ),
}


@nox.session
def hypercorn_suite(session: nox.Session) -> None:
    """Hypercorn's own trio tests, from the sdist of the installed version, on both shells.

    First on Hypercorn's own trio shell, then on the lean one
    (``tests/hypercorn_suite/hypercorn_lean_shell.py`` puts it where the tests
    reach Hypercorn's). Passes when the lean shell passes every test Hypercorn's
    passes; prints both verdicts per test. Needs the sdist (pip downloads it)
    and port 1234 free (Hypercorn's end-to-end tests bind 0.0.0.0:1234).
    """
    install(session)
    version = session.run(
        "python",
        "-c",
        "from importlib.metadata import version; print(version('hypercorn'))",
        silent=True,
    )
    assert isinstance(version, str)
    version = version.strip()
    tmp = Path(session.create_tmp()).resolve()
    root = tmp / f"hypercorn-{version}"
    if not (root / "tests").is_dir():
        # The installed version is the lock's, whose hashes include the sdist's.
        session.run(
            "python",
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--require-hashes",
            "-r",
            locked_file(session, "hypercorn"),
            "-d",
            str(tmp),
        )
        with tarfile.open(tmp / f"hypercorn-{version}.tar.gz") as sdist:
            sdist.extractall(tmp, filter="data")
    # Hypercorn's own options need pytest-cov and pytest-asyncio, which its trio tests do not.
    (root / "pytest.ini").write_text("[pytest]\naddopts = --strict-markers\n")
    plugin_dir = str(Path("tests/hypercorn_suite").resolve())
    reports = {shell: tmp / f"hypercorn-suite-{shell}.xml" for shell in ("hypercorn", "lean")}
    with session.chdir(root):
        for shell, plugin in (("hypercorn", ()), ("lean", ("-p", "hypercorn_lean_shell"))):
            session.log(f"Hypercorn's trio tests on the {shell} shell")
            session.run(
                "python",
                "-m",
                "pytest",
                *plugin,
                f"--junitxml={reports[shell]}",
                *(session.posargs or HYPERCORN_SUITE),
                env={"PYTHONPATH": plugin_dir},
                success_codes=[0, 1],  # compared below, test by test
            )
    stock, lean = (junit_verdicts(reports[shell]) for shell in ("hypercorn", "lean"))
    print("| test | Hypercorn's shell | lean shell |\n| --- | --- | --- |")
    for test in sorted(stock.keys() | lean.keys()):
        print(f"| {test} | {stock.get(test, '-')} | {lean.get(test, '-')} |")
    worse = [
        t
        for t, v in stock.items()
        if v == "passed" and lean.get(t) != "passed" and t not in LEAN_SHELL_REFUSES
    ]
    if worse or not lean:
        session.error(f"the lean shell fails what Hypercorn's passes: {worse or 'no test ran'}")
    for test, why in LEAN_SHELL_REFUSES.items():
        session.log(f"{test}: {lean.get(test, 'not run')} on the lean shell, as it must: {why}")


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
    install_serving(session)
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
    install(session)
    ensure_wrk(session, required=True)
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
    install_locked(session, "ruff")
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
    """pip-audit over the locked set, installed: every package any session installs."""
    install(session)
    # --skip-editable: trio_books itself is not on PyPI; every dependency is audited.
    # --strict: a dependency that could not be looked up fails the audit instead of
    # being skipped, so an unreachable vulnerability service never passes as "none found".
    session.run(
        "pip-audit", "--strict", "--skip-editable", "--progress-spinner", "off", *session.posargs
    )


@nox.session
def lock(session: nox.Session) -> None:
    """Write ``deploy/requirements.lock`` from pyproject.toml with uv, hashes included, and
    ``deploy/requirements-serve.lock``, what serving alone needs, at the same versions.

    Every extra and the ``tools`` group, for CPython 3.11 on x86_64 Linux whatever the
    machine. Pins that still fit are kept; ``-- --upgrade`` moves every package to its
    newest allowed release, ``-- --upgrade-package NAME`` one of them.
    """
    install_locked(session, "uv")
    target = ["--python-version", LOCK_PYTHON, "--python-platform", LOCK_PLATFORM]
    session.run(
        "uv",
        "pip",
        "compile",
        "pyproject.toml",
        "--all-extras",
        "--group",
        "tools",
        "--generate-hashes",
        *target,
        "--custom-compile-command",
        "nox -s lock",
        "--output-file",
        LOCK,
        *session.posargs,
        # uv prints the whole file too; its summary (stderr) is enough here.
        stdout=subprocess.DEVNULL,
        stderr=None,
    )
    # The serving lock may only hold versions the whole lock holds: it is resolved
    # under the whole lock's pins, hashes left out (a constraint takes none).
    pins = Path(session.create_tmp(), "pins.txt")
    pins.write_text(
        "".join(
            line.split(" ")[0] + "\n"
            for line in Path(LOCK).read_text().splitlines()
            if re.match(r"[A-Za-z0-9]", line)
        )
    )
    session.run(
        "uv",
        "pip",
        "compile",
        "pyproject.toml",
        "--group",
        "build",
        "--constraint",
        str(pins),
        "--generate-hashes",
        *target,
        "--custom-compile-command",
        "nox -s lock",
        "--output-file",
        SERVE_LOCK,
        stdout=subprocess.DEVNULL,
        stderr=None,
    )
