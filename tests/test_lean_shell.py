"""The lean server shell (``trio_books.trio.shell``/``server``) over real loopback sockets.

A small raw ASGI app stands in for the service here (no Elasticsearch is
needed to test how connections are read, kept alive and closed); the drills
run the real service on this shell.
"""

from __future__ import annotations

import functools
import re
import socket
import types
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import hypercorn.asyncio.run
import hypercorn.trio.run
import pytest
import trio
import trio.testing
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config
from hypercorn.events import RawData, Updated
from hypercorn.trio.run import worker_serve
from hypercorn.trio.worker_context import WorkerContext
from servers import answer_to

from trio_books.asyncio.hypercorn_shell import TCPServer as AsyncioTCPServer
from trio_books.asyncio.hypercorn_shell import patch_hypercorn_run as patch_asyncio_run
from trio_books.settings import Settings
from trio_books.trio import server
from trio_books.trio.app import create_app
from trio_books.trio.asgi import shielded_send
from trio_books.trio.hypercorn_shell import TCPServer, patch_hypercorn_run
from trio_books.trio.server import serve_lean
from trio_books.trio.shell import Connection

Message = MutableMapping[str, Any]
# Far more than a loopback socket buffers.
BIG = 32_000_000


class App:
    """Answers ``/slow`` after 0.3 s and anything else at once; counts what it began and answered."""

    def __init__(self) -> None:
        self.begun = 0
        self.answered = 0
        self.slow_started = trio.Event()
        self.disconnected = trio.Event()

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        self.begun += 1
        if scope["path"] == "/upload":
            # Reads the body; told when the client is gone.
            while (message := await receive())["type"] != "http.disconnect":
                if not message.get("more_body", False):
                    break
            else:
                self.disconnected.set()
                return
        if scope["path"] == "/slow":
            self.slow_started.set()
            await trio.sleep(0.3)
        body = b"x" * BIG if scope["path"] == "/big" else scope["path"].encode()
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.answered += 1


async def test_the_app_hears_of_a_client_that_left_mid_body() -> None:
    """The reader itself ends this connection (h11 refuses the cut body, the
    protocol answers 400 and closes): the app must still get ``http.disconnect``."""
    async with lean() as served, await served.connect() as stream:
        head = b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
        await stream.send_all(head + b"x" * 10)
        await stream.send_eof()
        with trio.fail_after(3):
            await served.app.disconnected.wait()


def config(**overrides: float) -> Config:
    result = Config()
    result.bind = ["127.0.0.1:0"]
    result.accesslog = None
    result.errorlog = None
    result.keep_alive_timeout = overrides.get("keep_alive_timeout", 5.0)
    result.graceful_timeout = overrides.get("graceful_timeout", 30.0)
    result.read_timeout = int(overrides.get("read_timeout", 10))
    return result


class Served:
    def __init__(self, app: App, port: int, stop: trio.Event, stopped: trio.Event) -> None:
        self.app = app
        self.port = port
        self.stop = stop
        self.stopped = stopped

    async def connect(self) -> trio.SocketStream:
        return await trio.open_tcp_stream("127.0.0.1", self.port)


@asynccontextmanager
async def lean(
    serve: Any = serve_lean,
    asgi_app: Any = None,
    wrap: Callable[[Any], Any] | None = None,
    **overrides: float,
) -> AsyncIterator[Served]:
    """Serve the stand-in app (or *asgi_app*) with *serve* (the lean shell unless told); stop it after.

    *wrap*, when given, wraps the stand-in app as the service's app is wrapped for that shell.
    """
    app = App()
    stop, stopped = trio.Event(), trio.Event()

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            await serve(
                ASGIWrapper(asgi_app or (wrap(app) if wrap else app)),
                config(**overrides),
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        finally:
            stopped.set()

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(run)
        yield Served(app, int(binds[0].rsplit(":", 1)[1]), stop, stopped)
        stop.set()


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


async def answer(stream: trio.SocketStream) -> bytes:
    """One whole answer (head and a Content-Length body) from *stream*."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, f"closed before a whole answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = await stream.receive_some(65536)
        assert chunk, "closed inside the body"
        body += chunk
    return head + b"\r\n\r\n" + body


async def closed_within(stream: trio.SocketStream, seconds: float) -> bool:
    """Whether the server closes *stream* within *seconds* (what it sends meanwhile is dropped)."""
    with trio.move_on_after(seconds):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


async def test_keep_alive_serves_one_request_after_another_on_one_connection() -> None:
    async with lean() as served:
        async with await served.connect() as stream:
            for path in ("/a", "/b", "/c"):
                await stream.send_all(get(path))
                assert (await answer(stream)).endswith(path.encode())
        assert served.app.begun == 3


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout() -> None:
    async with lean(keep_alive_timeout=0.3) as served, await served.connect() as stream:
        await stream.send_all(get("/a"))
        await answer(stream)
        started = trio.current_time()
        assert await closed_within(stream, 3)
        # Not before the timeout: the deadline starts when the answer is done.
        assert trio.current_time() - started >= 0.25


async def test_a_half_sent_head_counts_as_idle_and_is_closed_too() -> None:
    async with lean(keep_alive_timeout=0.3) as served:
        async with await served.connect() as stream:
            await stream.send_all(b"GET /a HTTP/1.1\r\nHost: te")
            assert await closed_within(stream, 3)
        assert served.app.begun == 0


async def test_at_shutdown_idle_connections_close_at_once_and_new_ones_are_refused() -> None:
    async with lean() as served:
        async with await served.connect() as idle:
            await idle.send_all(get("/a"))
            await answer(idle)
            served.stop.set()
            assert await closed_within(idle, 2)
        with trio.fail_after(5):
            await served.stopped.wait()
        with pytest.raises(OSError, match="all attempts to connect"):
            await served.connect()


async def test_at_shutdown_a_busy_connection_is_answered_then_closed() -> None:
    async with lean() as served:
        async with await served.connect() as busy:
            await busy.send_all(get("/slow"))
            await served.app.slow_started.wait()
            served.stop.set()
            assert (await answer(busy)).endswith(b"/slow")
            assert await closed_within(busy, 2)
        assert (served.app.begun, served.app.answered) == (1, 1)


async def test_a_request_already_sent_behind_the_last_answer_does_not_hold_shutdown() -> None:
    """The next request arrives while the answer to the first is still being made.

    The protocol closes the connection after that answer (the server is
    stopping) with the second request unread. The server must neither begin
    it nor wait for it: serving ends at once, not at the graceful timeout.
    """
    async with lean(graceful_timeout=30) as served:
        async with await served.connect() as stream:
            await stream.send_all(get("/slow") + get("/b"))
            await served.app.slow_started.wait()
            served.stop.set()
            assert (await answer(stream)).endswith(b"/slow")
            assert await closed_within(stream, 2)
        with trio.fail_after(5):
            await served.stopped.wait()
        assert (served.app.begun, served.app.answered) == (1, 1)


# Each shell as the service is served on it: Hypercorn's patched
# (``trio.hypercorn_shell``) and the app's sends shielded for READ_TIMEOUT.
SENDING_SHELLS = pytest.mark.parametrize(
    ("serve", "wrap"),
    [(serve_lean, None), (worker_serve, functools.partial(shielded_send, seconds=1))],
    ids=["lean-shell", "hypercorn-shell"],
)


@SENDING_SHELLS
async def test_a_client_that_reads_nothing_is_cut_off_after_the_read_timeout(
    serve: Any, wrap: Callable[[Any], Any] | None
) -> None:
    patch_hypercorn_run(hypercorn.trio.run)  # as serving with SERVER_SHELL=hypercorn does
    async with (
        lean(serve, wrap=wrap, read_timeout=1, keep_alive_timeout=60) as served,
        await served.connect() as stream,
    ):
        await stream.send_all(get("/big"))
        # The answer is far larger than both sockets' buffers: the server's
        # send must wait, and gives up after the read timeout.
        await trio.sleep(2.5)
        received = 0
        with trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                received += len(chunk)
        # What the buffers held, then the end: not the whole answer.
        assert 0 < received < BIG // 2


@SENDING_SHELLS
async def test_a_slow_but_steady_reader_gets_the_whole_answer(
    serve: Any, wrap: Callable[[Any], Any] | None
) -> None:
    """The send's bound is on a stall, not on the whole send: reading this answer
    takes about three times the read timeout, with no pause near it."""
    patch_hypercorn_run(hypercorn.trio.run)
    async with (
        lean(serve, wrap=wrap, read_timeout=1, keep_alive_timeout=60) as served,
        await served.connect() as stream,
    ):
        await stream.send_all(get("/big"))
        started = trio.current_time()
        data = b""
        with trio.fail_after(30):
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some(65536)
            received = len(data.partition(b"\r\n\r\n")[2])
            next_pause = 2**20
            while received < BIG:
                chunk = await stream.receive_some(65536)
                assert chunk, f"closed after {received:,} of {BIG:,} bytes"
                received += len(chunk)
                if received >= next_pause:
                    next_pause += 2**20
                    await trio.sleep(0.1)
        assert trio.current_time() - started > 2


def hypercorns_shell(**overrides: float) -> AbstractAsyncContextManager[Served]:
    """The same app on Hypercorn's own trio worker and shell, for comparison."""
    return lean(worker_serve, **overrides)


# Malformed, unusual or hostile bytes; each shell must answer them as the other does.
MALFORMED = {
    "garbage": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,
    "no version": b"GET /a\r\n\r\n",
    "unknown version": b"GET /a HTTP/9.9\r\nHost: t\r\n\r\n",
    "no host": b"GET /a HTTP/1.1\r\n\r\n",
    "space in header name": b"GET /a HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n",
    "nul in header value": b"GET /a HTTP/1.1\r\nHost: t\r\nX: a\x00b\r\n\r\n",
    "bare LF line ends": b"GET /a HTTP/1.1\nHost: t\n\n",
    "two content lengths": b"GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
    "length and chunked": (
        b"GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "bad chunk size": b"GET /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "head past the size cap": b"GET /a HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
    "three pipelined": get("/a") + get("/b") + get("/c"),
    "expect continue": (
        b"GET /a HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nxx"
    ),
    "connection close": b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "http/1.0": b"GET /a HTTP/1.0\r\n\r\n",
    "absolute form": b"GET http://t/a HTTP/1.1\r\nHost: t\r\n\r\n",
}


async def first_bytes(served: Served, data: bytes) -> tuple[bytes, bool]:
    """What the server sends back to *data* within a second, and whether it then closed."""
    async with await served.connect() as stream:
        return await answer_to(stream, data)


async def what_comes_back(served: Served, data: bytes) -> tuple[list[bytes], bool]:
    """The status lines answered to *data* (the bodies here hold none), and whether the server then closed."""
    received, closed = await first_bytes(served, data)
    # Answers follow each other without a line break (a body has no end of line).
    return re.findall(rb"HTTP/1\.[01] \d{3}", received), closed


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_the_lean_shell_answers_hostile_bytes_as_hypercorns_does(case: str) -> None:
    async with lean(keep_alive_timeout=3) as ours, hypercorns_shell(keep_alive_timeout=3) as theirs:
        assert await what_comes_back(ours, MALFORMED[case]) == await what_comes_back(
            theirs, MALFORMED[case]
        )


# ---------------------------------------------------------------- the service's own app on each shell


def service_app(shell: str) -> Any:
    """The Trio build's app as it is built for *shell* (ping needs no Elasticsearch)."""
    return create_app(
        Settings(es_urls=["http://127.0.0.1:9"], index="books", server_shell=shell, es_timeout=1)
    ).asgi_app


@pytest.mark.parametrize(
    ("serve", "built_for", "closes"),
    [
        # The lean shell needs no shielded send: it moves a deadline, and nothing
        # in its send can be cancelled half-way.
        (serve_lean, "lean", True),
        # Hypercorn's shell with the shielded send, as SERVER_SHELL=hypercorn builds it.
        (worker_serve, "hypercorn", True),
        # Why that shield exists: without it, Quart-Trio cancels Hypercorn's
        # keep-alive timer restart half-way, and an idle connection stays open.
        (worker_serve, "lean", False),
    ],
    ids=["lean-shell", "hypercorn-shell-with-shield", "hypercorn-shell-without-shield"],
)
async def test_an_idle_connection_closes_after_the_keep_alive_timeout_with_the_service(
    serve: Any, built_for: str, closes: bool
) -> None:
    async with (
        lean(serve, service_app(built_for), keep_alive_timeout=0.3) as served,
        await served.connect() as stream,
    ):
        await stream.send_all(get("/"))
        assert b" 200 " in (await answer(stream)).split(b"\r\n")[0]
        assert await closed_within(stream, 2.0) is closes


def test_hypercorns_shell_is_patched_only_where_it_is_still_the_one_served() -> None:
    """The shutdown race fix (``hypercorn_shell``) replaces ``run.TCPServer``; a
    Hypercorn that no longer serves through that name must be refused, not
    patched in silence (the race would be back unnoticed)."""
    patch_hypercorn_run(hypercorn.trio.run)
    assert hypercorn.trio.run.TCPServer is TCPServer
    renamed = types.ModuleType("hypercorn.trio.run")
    renamed.TCPServer = object  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="no longer serves with"):
        patch_hypercorn_run(renamed)


def test_hypercorns_asyncio_shell_is_patched_only_where_it_is_still_the_one_served() -> None:
    patch_asyncio_run(hypercorn.asyncio.run)
    assert hypercorn.asyncio.run.TCPServer is AsyncioTCPServer
    renamed = types.ModuleType("hypercorn.asyncio.run")
    renamed.TCPServer = object  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="no longer serves with"):
        patch_asyncio_run(renamed)


class _Enough(Exception):
    pass


class _Recording:
    """Stands in for the connection nursery: counts the connections handed to it."""

    def __init__(self, stop_at: int) -> None:
        self.started = 0
        self.stop_at = stop_at

    def start_soon(self, serve: object, connection: Any, *args: object) -> None:
        self.started += 1
        connection.socket.close()
        if self.started == self.stop_at:
            raise _Enough


async def test_a_burst_of_connections_is_accepted_without_a_schedule_point_each() -> None:
    """Under load every schedule point waits out a scheduler batch: taking one
    connection per schedule point made the last of a burst of 64 wait up to a
    second before its first request was read."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(20)]
    nursery = _Recording(stop_at=20)
    try:
        with pytest.raises(_Enough), trio.testing.assert_no_checkpoints():
            await server._accept(
                listener,
                None,
                config(),
                WorkerContext(None),
                {},
                set(),
                nursery,  # type: ignore[arg-type]
            )
        assert nursery.started == 20
    finally:
        for client in clients:
            client.close()
        listener.close()


async def test_an_answer_yields_to_the_scheduler_once_at_its_end_not_at_every_send() -> None:
    """Quart-Trio makes three sends per answer; a schedule point on each made
    every answer wait out three scheduler batches under load. One at the end
    keeps the other connections' turn (none at all doubled ping's p99)."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    connection = Connection(None, config(), WorkerContext(None), {}, ours)  # type: ignore[arg-type]
    try:
        with trio.testing.assert_no_checkpoints():
            await connection.protocol_send(RawData(data=b"HTTP/1.1 200 OK\r\n\r\n"))
            await connection.protocol_send(Updated(idle=False))
        # A schedule point though not a cancel point (the bytes are out), which
        # trio.testing.assert_checkpoints would not count: read Trio's counter.
        task = trio.lowlevel.current_task()
        before = task._schedule_points  # type: ignore[attr-defined]
        await connection.protocol_send(Updated(idle=True))
        assert task._schedule_points == before + 1  # type: ignore[attr-defined]
        assert theirs.recv(100) == b"HTTP/1.1 200 OK\r\n\r\n"
    finally:
        ours.close()
        theirs.close()


async def test_a_request_begun_during_the_answers_last_yield_is_not_cut_at_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The answer's end yields once (``Updated(idle=True)``). During that yield the
    reader may begin the next request (it had arrived already) and go back to
    waiting for bytes, and the stop signal may come. The connection is busy
    again then: its reader must not be stopped as if it were idle, which would
    tell the app its client left and lose a request it began (the shutdown
    drill lost 3 of 636 that way with two workers)."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    connection = Connection(None, config(), WorkerContext(None), {}, ours)  # type: ignore[arg-type]
    connection.idle = False
    reader_wait = trio.CancelScope()
    real_checkpoint = trio.lowlevel.cancel_shielded_checkpoint

    async def meanwhile() -> None:
        # What the other tasks do during the yield, in the order they did it.
        connection.idle = False  # the reader: Updated(idle=False), the app begins
        connection._waiting = reader_wait  # the reader waits for the next bytes
        connection.terminate()  # the stop signal
        await real_checkpoint()

    monkeypatch.setattr(trio.lowlevel, "cancel_shielded_checkpoint", meanwhile)
    try:
        await connection.protocol_send(Updated(idle=True))
        assert not reader_wait.cancel_called
        # The keep-alive deadline is for idle waits only: not put on this one.
        assert reader_wait.deadline == float("inf")
    finally:
        ours.close()
        theirs.close()
