"""The Trio backend of the Elasticsearch transport: plain sockets on Trio's I/O waits.

Each call of trio's socket methods passes through the scheduler even when the
kernel answers at once, and an exchange of the fan-out makes several. So a
connection owns a plain non-blocking socket, taken over from the stream that
``trio.open_tcp_stream`` connected, and waits with
``trio.lowlevel.wait_readable``/``wait_writable`` only when the kernel has
nothing yet. Every receive still reaches one checkpoint: a peer that never
stops sending cannot hold the worker, and cancellation is always seen.

Mirrors :mod:`trio_books.asyncio.network`.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import trio

from trio_books.transport.backend import READ_SIZE, NonBlockingSocket


class TrioSocket(NonBlockingSocket):
    """One connected non-blocking socket (a :class:`~trio_books.transport.backend.RawStream`)."""

    __slots__ = ()

    async def send_all(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self.sock.send(view)
            except BlockingIOError:
                await _wait(trio.lowlevel.wait_writable, self.sock, deadline)
                continue
            view = view[sent:]

    async def receive_some(self, deadline: float) -> bytes:
        try:
            data = self.sock.recv(READ_SIZE)
        except BlockingIOError:
            pass
        else:
            await trio.lowlevel.checkpoint()
            return data
        # The hot path's wait, written out (see _wait): one coroutine frame less per call.
        while True:
            if deadline >= trio.current_effective_deadline():
                await trio.lowlevel.wait_readable(self.sock)
            else:
                with trio.CancelScope(deadline=deadline) as scope:
                    await trio.lowlevel.wait_readable(self.sock)
                if scope.cancelled_caught:
                    raise TimeoutError
            try:
                return self.sock.recv(READ_SIZE)
            except BlockingIOError:
                continue


async def _wait(
    wait: Callable[[socket.socket], Awaitable[None]], sock: socket.socket, deadline: float
) -> None:
    # A bare cancel scope only when this call's own limit comes before the
    # enclosing one (a search's deadline): otherwise it could never fire, and
    # skipping it saves registering a deadline on every wait.
    if deadline >= trio.current_effective_deadline():
        await wait(sock)
        return
    with trio.CancelScope(deadline=deadline) as scope:
        await wait(sock)
    if scope.cancelled_caught:
        raise TimeoutError


class TrioSlots:
    """A node's slots on a ``trio.CapacityLimiter``."""

    __slots__ = ("limiter",)

    def __init__(self, capacity: int) -> None:
        self.limiter = trio.CapacityLimiter(capacity)

    def free(self) -> bool:
        return bool(self.limiter.available_tokens)

    async def acquire(self, token: object, deadline: float) -> bool:
        if self.limiter.available_tokens:
            # A free token means nobody waits (a release hands its token to a waiter):
            # take it without the WouldBlock exception, whose traceback is garbage for the GC.
            self.limiter.acquire_on_behalf_of_nowait(token)
            return True
        with trio.move_on_at(deadline):
            await self.limiter.acquire_on_behalf_of(token)
            return True
        return False

    def release(self, token: object) -> None:
        self.limiter.release_on_behalf_of(token)


class TrioNetwork:
    """The :class:`~trio_books.transport.backend.NetworkBackend` of the Trio build."""

    def now(self) -> float:
        return trio.current_time()

    def slots(self, capacity: int) -> TrioSlots:
        return TrioSlots(capacity)

    async def connect(self, host: str, port: int, deadline: float) -> TrioSocket:
        with trio.move_on_at(deadline):
            stream = await trio.open_tcp_stream(host, port)
            sock = socket.socket(fileno=stream.socket.detach())
            sock.setblocking(False)
            return TrioSocket(sock)
        raise TimeoutError
