"""Shared fixtures.

Testing policy (after trio-websocket's): everything on loopback; servers bind
port 0 and report their address through ``nursery.start``; every async test
runs under a deadline; tests of search behaviour use the real Elasticsearch of
the test session, each in indices named for that test alone, deleted after it.
The API's contract tests run against both builds (the ``build`` fixture), each
served by a real Hypercorn and driven over HTTP (see ``servers.py``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import trio
from log_lines import Lines, lines_of
from servers import BUILDS, api_client
from tools import REQUIRED, missing_reason

from trio_books.errors import TrioBooksError
from trio_books.es import local, security
from trio_books.es.client import Elasticsearch
from trio_books.es.engines import ENGINES
from trio_books.es.opening import open_http_client
from trio_books.settings import Settings
from trio_books.trio.transport import TrioTransport

# Reads every public answer the suite receives for leaks (see public_answers.py).
pytest_plugins = ["public_answers"]

# The test session's own nodes use this port and the next ones, apart from a developer's 9200
# (TRIO_BOOKS_TEST_ES_PORT moves them, so two suites can run side by side).
TEST_ES_PORT = int(os.environ.get("TRIO_BOOKS_TEST_ES_PORT", "9250"))
TEST_DEADLINE = 120.0
# The engine the session's own nodes run: Elasticsearch 8.19 unless the
# compatibility run (nox -s compat) names another engine and version.
TEST_ENGINE = ENGINES[os.environ.get("TRIO_BOOKS_TEST_ENGINE", "elasticsearch")]
TEST_ENGINE_VERSION = (
    os.environ.get("TRIO_BOOKS_TEST_ENGINE_VERSION") or TEST_ENGINE.default_version
)


def session_node(port: int, *, secure: bool = False) -> local.NodeLayout:
    """The layout of one of the session's own nodes, of the session's engine."""
    return local.NodeLayout(
        local.default_cache_dir(),
        version=TEST_ENGINE_VERSION,
        port=port,
        secure=secure,
        engine=TEST_ENGINE,
    )


@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    """The Elasticsearch of this test session: ``TRIO_BOOKS_ES_URLS``, else one we start."""
    if configured := os.environ.get("TRIO_BOOKS_ES_URLS"):
        yield configured.split(",")[0].strip().rstrip("/")
        return
    layout = session_node(TEST_ES_PORT)
    already_running = trio.run(local.probe, layout.url) is local.PortState.ELASTICSEARCH
    url = trio.run(local.start, layout)
    yield url
    if not already_running:
        trio.run(local.stop, layout)


@pytest.fixture
async def es(es_url: str) -> AsyncIterator[Elasticsearch]:
    # The project's own transport, as the Trio build and the loader use.
    transport = TrioTransport(connections_per_node=16)
    async with open_http_client(timeout=30, max_connections=16, transport=transport) as http:
        yield Elasticsearch(http, [es_url])


@pytest.fixture
async def index_name(request: pytest.FixtureRequest, es: Elasticsearch) -> AsyncIterator[str]:
    """A name no other test uses; every index starting with it is deleted afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    name = f"test-{slug}-{uuid.uuid4().hex[:8]}"
    yield name
    with trio.CancelScope(shield=True):
        found = await es.request(
            "GET", f"/{name}*", params={"expand_wildcards": "all", "filter_path": "*.settings"}
        )
        for index in found or {}:
            await es.delete_index(index)


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    """The service's log lines during the test, as its JSON format writes them."""
    with lines_of() as lines:
        yield lines


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ``TRIO_BOOKS_`` variable and no ``.env`` in sight (settings read both)."""
    for name in list(os.environ):
        if name.upper().startswith("TRIO_BOOKS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
async def deadline(nursery: trio.Nursery) -> None:
    """Fail the test if it runs longer than ``TEST_DEADLINE`` seconds."""

    async def watchdog() -> None:
        await trio.sleep(TEST_DEADLINE)
        raise TimeoutError(f"test ran longer than its {TEST_DEADLINE:.0f} s deadline")

    nursery.start_soon(watchdog)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """The same deadline for synchronous tests (demos, the asyncio build's tests, the CLI).

    They run event loops of their own (``trio.run``, ``asyncio.run``) or wait on
    subprocesses, where no nursery of the suite's can hold a watchdog; an
    interval timer's SIGALRM raises in the main thread wherever the test waits.
    """
    function = getattr(item, "function", None)
    if function is None or inspect.iscoroutinefunction(function):
        yield
        return
    seconds = TEST_DEADLINE

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"test ran longer than its {seconds:.0f} s deadline")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.needs(tool, ...)``: skip without the tool, or fail where CI requires it."""
    for mark in item.iter_markers("needs"):
        for tool in mark.args:
            if (reason := missing_reason(tool)) is not None:
                if REQUIRED:
                    pytest.fail(f"{reason} (TRIO_BOOKS_REQUIRE_TOOLS=1)")
                pytest.skip(reason)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--jaeger",
        metavar="BINARY",
        help="run the tests marked jaeger, sending traces to this Jaeger (nox -s jaeger builds it)",
    )


@pytest.fixture
def jaeger_binary(request: pytest.FixtureRequest) -> str:
    binary: str = request.config.getoption("--jaeger")
    return binary


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The Jaeger tests need a build of Jaeger that only their session makes (nox -s
    # jaeger): elsewhere they are deselected, and pytest's summary counts them so.
    if not config.getoption("--jaeger"):
        deselected = [item for item in items if item.get_closest_marker("jaeger")]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = [item for item in items if not item.get_closest_marker("jaeger")]
    # Every async test gets the deadline, except those on a virtual clock,
    # where a watchdog's sleep would be jumped over at once.
    for item in items:
        function = getattr(item, "function", None)
        fixtures: list[str] = getattr(item, "fixturenames", [])
        if (
            inspect.iscoroutinefunction(function)
            and "autojump_clock" not in fixtures
            and "deadline" not in fixtures
        ):
            fixtures.append("deadline")


# ---------------------------------------------------------------- the search API


@pytest.fixture
async def catalogue_index(es: Elasticsearch, index_name: str) -> str:
    """A fresh index holding the test catalogue (see ``catalogue.py``)."""
    from catalogue import BOOKS

    from trio_books.core.bulk import bulk_body
    from trio_books.core.mapping import index_body

    await es.create_index(index_name, index_body())
    result = await es.bulk(bulk_body(index_name, BOOKS), refresh=True)
    assert result["errors"] is False
    return index_name


@pytest.fixture
def api_settings(es_url: str, catalogue_index: str) -> Settings:
    """Settings pointing at the test catalogue; facets wide enough to hold every value.

    The deadline is generous: on a loaded CI machine a search may take seconds,
    and the tests that are about deadlines set their own.
    """
    return Settings(
        es_urls=[es_url],
        index=catalogue_index,
        facet_size=100,
        search_deadline=30.0,
        complete_deadline=30.0,
    )


@pytest.fixture(params=BUILDS)
def build(request: pytest.FixtureRequest) -> str:
    """Which build serves the test: ``trio`` or ``asyncio``."""
    name: str = request.param
    return name


@pytest.fixture
async def client(build: str, api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of *build* served by Hypercorn on port 0 for the test's duration."""
    async with api_client(build, api_settings) as http:
        yield http


# ---------------------------------------------------------------- a node we may pause, stop and start


PAUSABLE_ES_PORT = TEST_ES_PORT + 1


class PausableNode:
    """A second local Elasticsearch node of the test session's own, for real slowness and outages.

    ``pause()`` sends SIGSTOP to the server (it accepts connections but answers
    nothing), ``resume()`` SIGCONT; ``stop()``/``start()`` take it down and up.
    """

    def __init__(self, layout: local.NodeLayout) -> None:
        self.layout = layout
        self.url = layout.url
        self.paused = False

    def _pid(self) -> int:
        pid = local.read_pid(self.layout)
        assert pid is not None, "the pausable node is not running"
        return pid

    def pause(self) -> None:
        os.kill(self._pid(), signal.SIGSTOP)
        self.paused = True

    def requests_waiting(self) -> int:
        """Connections whose request sits unread in the kernel: what a paused node holds."""
        port = int(self.url.rsplit(":", 1)[1])
        waiting = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                unread = int(fields[4].split(":")[1], 16)
                # State 01 is ESTABLISHED; the node's side of the connection.
                if local_port == port and fields[3] == "01" and unread > 0:
                    waiting += 1
        return waiting

    def resume(self) -> None:
        if self.paused:
            os.kill(self._pid(), signal.SIGCONT)
            self.paused = False

    async def stop(self) -> None:
        self.resume()
        await local.stop(self.layout)

    async def start(self) -> None:
        await local.start(self.layout)


@pytest.fixture(scope="session")
def pausable_node() -> Iterator[PausableNode]:
    layout = session_node(PAUSABLE_ES_PORT)
    if (
        trio.run(local.probe, layout.url) is local.PortState.ELASTICSEARCH
        and local.read_pid(layout) is None
    ):
        pytest.fail(f"port {PAUSABLE_ES_PORT} runs an Elasticsearch this suite cannot pause")
    trio.run(local.start, layout)
    node = PausableNode(layout)
    yield node
    node.resume()
    trio.run(local.stop, layout)


@pytest.fixture
async def paused_catalogue(pausable_node: PausableNode, index_name: str) -> AsyncIterator[str]:
    """The test catalogue in *index_name* on the pausable node; the node is resumed afterwards."""
    from catalogue import BOOKS

    from trio_books.core.bulk import bulk_body
    from trio_books.core.mapping import index_body

    async with open_http_client(timeout=30, max_connections=4) as http:
        node_es = Elasticsearch(http, [pausable_node.url])
        await node_es.create_index(index_name, index_body())
        await node_es.bulk(bulk_body(index_name, BOOKS), refresh=True)
        try:
            yield index_name
        finally:
            pausable_node.resume()
            # A test may have taken the node down; its data goes with the session.
            with trio.CancelScope(shield=True), contextlib.suppress(TrioBooksError):
                await node_es.delete_index(index_name)


# ---------------------------------------------------------------- a secured node


SECURE_ES_PORT = TEST_ES_PORT + 10


@pytest.fixture(scope="session")
def secure_es() -> Iterator[security.SecureInfo]:
    """A single local node with TLS and file-realm users (``es start --secure``), once a session.

    Stopped at the end if this session started it; its ``secure.json`` says how to reach it.
    """
    layout = session_node(SECURE_ES_PORT, secure=True)
    already_running = trio.run(local.probe_node, layout) is local.PortState.ELASTICSEARCH
    trio.run(local.start, layout)
    info = security.read_secure_info(layout)
    assert info is not None, f"no {security.secure_file(layout)} after a secure start"
    yield info
    if not already_running:
        trio.run(local.stop, layout)
