"""The asyncio backend of the Elasticsearch transport: plain sockets on the loop's readiness waits.

It mirrors :mod:`trio_books.trio.network` so the benchmark compares
concurrency models rather than clients: a connection owns a non-blocking
socket, calls ``send``/``recv`` directly, and waits (``loop.add_reader`` /
``add_writer`` on a future, under ``asyncio.timeout_at``) only when the kernel
has nothing yet. Every receive still yields to the loop once, as Trio's
checkpoint does: an ``await`` in asyncio yields only when it must wait, and on
a busy machine (where Elasticsearch has answered before the worker runs again)
a branch of the fan-out would then send, read and parse its whole exchange
before the next branch had sent its request, one after another.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from trio_books.transport.backend import READ_SIZE, NonBlockingSocket


class AsyncioSocket(NonBlockingSocket):
    """One connected non-blocking socket (a :class:`~trio_books.transport.backend.RawStream`).

    Bytes read just before a cancellation are kept (``unread``) and returned by
    the next read: a cut exchange's connection can then be read to its end.
    """

    __slots__ = ("loop", "unread")

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(sock)
        self.loop = loop
        self.unread = b""

    def receive_nowait(self) -> bytes | None:
        if self.unread:
            data, self.unread = self.unread, b""
            return data
        return super().receive_nowait()

    async def send_all(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except BlockingIOError:
                await _wait(self.loop, self.sock, deadline, writable=True)
                continue
            view = view[sent:]

    async def receive_some(self, deadline: float) -> bytes:
        try:
            data = self.unread or self.sock.recv(READ_SIZE)
        except BlockingIOError:
            pass
        else:
            self.unread = b""
            try:
                # Trio's checkpoint: the other tasks run (and send) before this one goes on.
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                # Read, but not taken: the next read returns it (see the class).
                self.unread = data
                raise
            return data
        while True:
            await _wait(self.loop, self.sock, deadline, writable=False)
            try:
                return self.sock.recv(READ_SIZE)
            except BlockingIOError:
                continue


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def _wait(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, deadline: float, *, writable: bool
) -> None:
    waiter: asyncio.Future[None] = loop.create_future()
    if writable:
        loop.add_writer(sock, _wake, waiter)
    else:
        loop.add_reader(sock, _wake, waiter)
    try:
        if deadline == math.inf:
            await waiter
        else:
            async with asyncio.timeout_at(deadline):
                await waiter
    finally:
        if writable:
            loop.remove_writer(sock)
        else:
            loop.remove_reader(sock)


class AsyncioSlots:
    """A node's slots on an ``asyncio.Semaphore``."""

    __slots__ = ("semaphore",)

    def __init__(self, capacity: int) -> None:
        self.semaphore = asyncio.Semaphore(capacity)

    def free(self) -> bool:
        return not self.semaphore.locked()

    async def acquire(self, token: object, deadline: float) -> bool:
        if not self.semaphore.locked():
            await self.semaphore.acquire()  # free: returns at once
            return True
        try:
            async with asyncio.timeout_at(None if deadline == math.inf else deadline):
                await self.semaphore.acquire()
        except TimeoutError:
            return False
        return True

    def release(self, token: object) -> None:
        self.semaphore.release()


class AsyncioDrains:
    """Drains as tasks this object keeps, cancels and awaits at close (a
    :class:`~trio_books.transport.backend.Drains`).

    Not a ``TaskGroup``: the serving app opens its client in a lifespan
    generator, across whose ``yield`` a task group cannot be held; the owner is
    whoever calls :meth:`aclose` (:func:`owned_drains`), and every task it started
    has ended when that returns.
    """

    __slots__ = ("closing", "tasks")

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.closing = False

    def start(self, drain: Callable[[], Awaitable[None]], abandon: Callable[[], None]) -> bool:
        if self.closing:
            return False
        began = False

        async def run() -> None:
            nonlocal began
            began = True
            await drain()

        def ended(task: asyncio.Task[None]) -> None:
            self.tasks.discard(task)
            # Cancelled before its first step, a coroutine runs none of its body.
            if not began:
                abandon()

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)
        task.add_done_callback(ended)
        return True

    def cancel_all(self) -> None:
        for task in self.tasks:
            task.cancel()

    async def aclose(self) -> None:
        """Cancel every drain and wait for each to end (each closes its connection)."""
        self.closing = True
        tasks = list(self.tasks)
        self.cancel_all()
        await asyncio.gather(*tasks, return_exceptions=True)


@asynccontextmanager
async def owned_drains() -> AsyncIterator[AsyncioDrains]:
    """Drains for as long as the client is open; cancelled when it closes."""
    drains = AsyncioDrains()
    try:
        yield drains
    finally:
        # A drain only saves a reconnect: at close, none is worth waiting for.
        await drains.aclose()


class AsyncioNetwork:
    """The :class:`~trio_books.transport.backend.NetworkBackend` of the asyncio build."""

    def is_cancellation(self, error: BaseException) -> bool:
        return isinstance(error, asyncio.CancelledError)

    def drains(self) -> AbstractAsyncContextManager[AsyncioDrains]:
        return owned_drains()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def slots(self, capacity: int) -> AsyncioSlots:
        return AsyncioSlots(capacity)

    async def connect(self, host: str, port: int, deadline: float) -> AsyncioSocket:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout_at(None if deadline == math.inf else deadline):
            found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            failure: OSError = OSError(f"no address for {host}")
            for family, kind, proto, _, address in found:
                sock = socket.socket(family, kind, proto)
                try:
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    await loop.sock_connect(sock, address)
                except OSError as error:
                    sock.close()
                    failure = error
                    continue
                except BaseException:
                    sock.close()
                    raise
                return AsyncioSocket(sock, loop)
        raise failure
