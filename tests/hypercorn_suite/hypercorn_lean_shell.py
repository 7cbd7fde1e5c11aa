"""pytest plugin: Hypercorn's own trio tests (from its sdist) on trio_books' lean shell.

Loaded with ``-p hypercorn_lean_shell`` into a run of the unpacked sdist's
``tests/trio`` and ``tests/e2e`` (``nox -s hypercorn_suite``). The tests run
unchanged; only the names through which they reach Hypercorn's shell are
replaced, per test module:

* ``tests.trio.test_sanity`` and ``tests.trio.test_keep_alive``: the module's
  ``TCPServer`` becomes :class:`LeanTCPServer` (the lean ``Connection``), and
  ``trio.testing.memory_stream_pair`` a connected AF_UNIX socket pair, since
  the lean shell reads and writes a real non-blocking socket.
* ``tests.e2e.test_httpx``: ``hypercorn.trio.serve`` becomes ``serve_lean``
  behind ``hypercorn.trio.serve``'s signature (listening on a real port).

``tests.trio.test_lifespan`` runs as it is: it tests Hypercorn's ``Lifespan``,
which ``serve_lean`` reuses unchanged.
"""

from __future__ import annotations

import inspect
import socket
from collections.abc import Awaitable, Callable, Generator, Iterator
from functools import partial
from typing import Any, Literal

import hypercorn.trio
import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import AppWrapper, Framework
from hypercorn.utils import wrap_app

from trio_books.trio.server import serve_lean
from trio_books.trio.shell import Connection

# Hypercorn's tests that reach the shell, by module. A test renamed or removed
# upstream fails the run at collection (update this table with the version).
REACHING = {
    "tests.trio.test_sanity": {
        "test_http1_request",
        "test_http1_websocket",
        "test_http2_request",
        "test_http2_websocket",
    },
    "tests.trio.test_keep_alive": {
        "test_http1_keep_alive_pre_request",
        "test_http1_keep_alive_during",
        "test_http1_keep_alive",
        "test_http1_keep_alive_pipelining",
    },
    "tests.e2e.test_httpx": {
        "test_keep_alive_max_requests_regression",
        "test_handle_isolate_state",
    },
}
STREAM_MODULES = {"tests.trio.test_sanity", "tests.trio.test_keep_alive"}
SERVE_MODULES = {"tests.e2e.test_httpx"}
# Hypercorn's tests have no timeout; a test that waits for bytes that never come
# (e.g. test_http2_websocket's fixed number of reads) fails instead of hanging.
DEADLINE = 30.0


class ServerEnd:
    """The server half that the patched ``memory_stream_pair`` hands the tests.

    They hang fakes for Hypercorn's shell on it (``socket = MockSocket()``; for
    h2 ``transport_stream``, ``do_handshake``, ``selected_alpn_protocol``); the
    lean shell ignores them and serves the real socket.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.real_socket = sock


class LeanTCPServer:
    """``hypercorn.trio.tcp_server.TCPServer``'s constructor and ``run``, on the lean shell."""

    def __init__(
        self,
        reached: list[object],
        app: AppWrapper,
        config: Config,
        context: WorkerContext,
        state: dict[str, Any],
        stream: ServerEnd,
    ) -> None:
        self._reached = reached
        self._args = (app, config, context, state, stream.real_socket)

    async def run(self) -> None:
        # Built here, in Trio (it reads the clock): where TCPServer starts its idle timer.
        connection = Connection(*self._args)
        self._reached.append(connection)
        await connection.run()

    def __await__(self) -> Generator[Any, None, None]:
        return self.run().__await__()


def lean_serve_for(reached: list[object]) -> Callable[..., Awaitable[None]]:
    async def lean_serve(
        app: Framework,
        config: Config,
        *,
        shutdown_trigger: Callable[..., Awaitable[None]] | None = None,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
        mode: Literal["asgi", "wsgi"] | None = None,
    ) -> None:
        """``hypercorn.trio.serve`` (which wraps the app for ``worker_serve``) on ``serve_lean``."""
        reached.append(config)
        await serve_lean(
            wrap_app(app, config.wsgi_max_body_size, mode),
            config,
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
        )

    return lean_serve


@pytest.fixture(autouse=True)
def lean_shell(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    module = request.module.__name__
    reached: list[object] = []
    opened: list[socket.socket] = []

    def socket_stream_pair() -> tuple[trio.SocketStream, ServerEnd]:
        # AF_UNIX: once the server has closed, the client's next send fails at
        # once (EPIPE -> BrokenResourceError), as on Hypercorn's memory stream;
        # test_http1_keep_alive_pre_request counts on it. Over TCP the first
        # send after the server's FIN would still succeed.
        client, server = socket.socketpair()
        opened.extend((client, server))
        server.setblocking(False)
        return trio.SocketStream(trio.socket.from_stdlib_socket(client)), ServerEnd(server)

    if module in STREAM_MODULES:
        # raising=True (the default): a module that no longer imports TCPServer fails here.
        monkeypatch.setattr(request.module, "TCPServer", partial(LeanTCPServer, reached))
        monkeypatch.setattr(trio.testing, "memory_stream_pair", socket_stream_pair)
    elif module in SERVE_MODULES:
        monkeypatch.setattr(hypercorn.trio, "serve", lean_serve_for(reached))
    yield
    # After the test's trio.run: the server task is cancelled by then.
    for sock in opened:
        sock.close()
    if request.node.originalname in REACHING.get(module, ()) and not reached:
        pytest.fail(f"{request.node.name} never reached the lean shell")


@pytest.fixture
async def lean_deadline(nursery: trio.Nursery) -> None:
    async def watchdog() -> None:
        await trio.sleep(DEADLINE)
        raise TimeoutError(f"test ran longer than {DEADLINE:.0f} s")

    nursery.start_soon(watchdog)


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect: sees all that was collected
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    collected: dict[str, set[str]] = {}
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        collected.setdefault(item.module.__name__, set()).add(item.originalname)
        if inspect.iscoroutinefunction(item.function) and "lean_deadline" not in item.fixturenames:
            item.fixturenames.append("lean_deadline")
    for module, expected in REACHING.items():
        if module in collected and (missing := expected - collected[module]):
            raise pytest.UsageError(
                f"Hypercorn's {module} no longer has {sorted(missing)}: update REACHING"
            )
