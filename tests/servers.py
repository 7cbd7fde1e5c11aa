"""Both builds, served by a real Hypercorn on 127.0.0.1 port 0, for tests driving them over HTTP.

The Trio build runs in the test's own Trio loop, started with
``nursery.start``. The asyncio build cannot run inside a Trio loop, so it gets a
thread with an asyncio loop of its own; the test waits (in a worker thread, so
its Trio loop keeps running) until that server reports its address, and stops
it by cancelling the serving task when the test is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import trio

from trio_books.asyncio.serve import serve_asyncio
from trio_books.serving import hypercorn_config
from trio_books.settings import Settings
from trio_books.trio.serve import serve_trio

BUILDS = ["trio", "asyncio"]
STARTUP_LIMIT = 30.0


class AsyncioServer:
    """The asyncio build, serving in its own thread and event loop."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None) -> None:
        self.settings = settings
        self.transport = transport
        self.binds: list[str] = []
        self.failure: BaseException | None = None
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.thread = threading.Thread(target=self._run, name="asyncio-build", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to the test thread, not lost in this one
            self.failure = error
        finally:
            self.ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()  # type: ignore[assignment]
        config = hypercorn_config(self.settings, host="127.0.0.1", port=0, worker_class="asyncio")
        # Cancellation is how the test asks it to stop.
        with contextlib.suppress(asyncio.CancelledError):
            await serve_asyncio(
                self.settings,
                config,
                stop_on_signals=False,
                started=self._started,
                transport=self.transport,
            )

    def _started(self, binds: list[str]) -> None:
        self.binds = binds
        self.ready.set()

    def wait_started(self) -> list[str]:
        if not self.ready.wait(STARTUP_LIMIT):
            raise TimeoutError("the asyncio build did not start in time")
        if not self.binds:
            raise RuntimeError("the asyncio build failed to start") from self.failure
        return self.binds

    def stop(self) -> None:
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            # RuntimeError: the loop closed in between, so nothing is left to stop.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._task.cancel)


@asynccontextmanager
async def serving(
    build: str, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[str]:
    """Serve *build* with *settings*; yield its base URL; stop it afterwards."""
    if build == "trio":
        config = hypercorn_config(settings, host="127.0.0.1", port=0)
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                functools.partial(
                    serve_trio, settings, config, stop_on_signals=False, transport=transport
                )
            )
            yield binds[0]
            nursery.cancel_scope.cancel()
        return
    server = AsyncioServer(settings, transport)
    server.thread.start()
    try:
        binds = await trio.to_thread.run_sync(server.wait_started, abandon_on_cancel=True)
        yield binds[0]
    finally:
        server.stop()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.thread.join)
    if server.failure is not None:
        raise server.failure


@asynccontextmanager
async def api_client(
    build: str, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose base URL is *build* serving with *settings*."""
    async with (
        serving(build, settings, transport=transport) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        yield http


async def answer_to(stream: trio.abc.Stream, data: bytes) -> tuple[bytes, bool]:
    """What a server sends back to *data* within a second, and whether it then closed."""
    received, closed = b"", False
    await stream.send_all(data)
    with trio.move_on_after(1.0):
        try:
            while chunk := await stream.receive_some(65536):
                received += chunk
        except trio.BrokenResourceError:
            pass
        closed = True
    return received, closed
