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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import trio

from trio_books.transport.backend import READ_SIZE, NonBlockingSocket


class TrioSocket(NonBlockingSocket):
    """One connected non-blocking socket (a :class:`~trio_books.transport.backend.RawStream`).

    Bytes read just before a cancellation are kept (``unread``) and returned by
    the next read: a cut exchange's connection can then be read to its end.
    """

    __slots__ = ("unread",)

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
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
                await _wait(trio.lowlevel.wait_writable, self.sock, deadline)
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
                await trio.lowlevel.checkpoint()
            except trio.Cancelled:
                # Read, but not taken: the next read returns it (see the class).
                self.unread = data
                raise
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


class TrioDrains:
    """Drains as tasks of one nursery (a :class:`~trio_books.transport.backend.Drains`).

    Each runs in a cancel scope of its own, kept here, so the transport can end
    them when it closes even when the nursery outlives it (a serving app's).
    """

    __slots__ = ("nursery", "scopes")

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.scopes: set[trio.CancelScope] = set()

    def start(self, drain: Callable[[], Awaitable[None]], abandon: Callable[[], None]) -> bool:
        # A Trio task always runs to its first checkpoint, cancelled or not: the
        # drain's own finally closes its connection, so abandon is not needed.
        scope = trio.CancelScope()

        async def run() -> None:
            try:
                with scope:
                    await drain()
            finally:
                self.scopes.discard(scope)

        try:
            self.nursery.start_soon(run)
        except RuntimeError:  # the nursery is closing
            return False
        self.scopes.add(scope)
        return True

    def cancel_all(self) -> None:
        for scope in self.scopes:
            scope.cancel()


@asynccontextmanager
async def owned_drains() -> AsyncIterator[TrioDrains]:
    """A nursery for drains, for as long as the client is open; cancelled when it closes.

    The nursery would hand the client's caller its errors in an exception group;
    the drains never raise, so an error is the caller's own and comes out as itself.
    """
    try:
        async with trio.open_nursery() as nursery:
            drains = TrioDrains(nursery)
            try:
                yield drains
            finally:
                # A drain only saves a reconnect: at close, none is worth waiting for.
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


class TrioNetwork:
    """The :class:`~trio_books.transport.backend.NetworkBackend` of the Trio build."""

    def is_cancellation(self, error: BaseException) -> bool:
        return isinstance(error, trio.Cancelled)

    def drains(self) -> AbstractAsyncContextManager[TrioDrains]:
        return owned_drains()

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
