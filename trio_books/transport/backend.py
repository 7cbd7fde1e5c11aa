"""What a shell gives the transport: a clock, slots, and raw byte streams (after httpcore's backends).

The connection pool (:mod:`trio_books.transport.connection_pool`), TLS
(:mod:`trio_books.transport.tls`) and the HTTP/1.1 framing are written once
over these few calls; :mod:`trio_books.trio.network` and
:mod:`trio_books.asyncio.network` implement them, each on its own event loop.

Deadlines are absolute times on the backend's own clock (``math.inf`` for
none): a call that must wait past one raises :class:`TimeoutError`. A call that
need not wait does not touch the scheduler more than the backend must (the
Trio backend still reaches one checkpoint per receive, so a peer that never
stops sending cannot hold a worker).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

READ_SIZE = 65536


class RawStream(Protocol):
    """One connected TCP socket."""

    async def send_all(self, data: bytes, deadline: float) -> None:
        """Send every byte of *data*."""

    async def receive_some(self, deadline: float) -> bytes:
        """The next bytes the peer sent (``b""`` at end of stream)."""

    def receive_nowait(self) -> bytes | None:
        """Bytes already waiting, ``b""`` at end of stream, ``None`` if there are none."""

    def looks_closed(self) -> bool:
        """Whether an idle connection was closed by the peer (or holds stray bytes).

        For a plain connection: ``receive_nowait() is not None``, one look at one
        socket, not at the pool.
        """

    def close(self) -> None:
        """Close the socket now (synchronous: it runs where a cancelled task may not await)."""


class ByteStream(Protocol):
    """What an exchange runs on: a raw stream (``http://``), or TLS over one (``https://``)."""

    async def send_all(self, data: bytes, deadline: float) -> None: ...

    async def receive_some(self, deadline: float) -> bytes: ...

    def looks_closed(self) -> bool:
        """Whether an idle connection was closed by the peer (or holds stray bytes)."""

    def close(self) -> None: ...


class Slots(Protocol):
    """One node's slots: how many requests may hold a connection at once."""

    def free(self) -> bool:
        """Whether a slot is free and nobody waits (then :meth:`acquire` returns at once)."""

    async def acquire(self, token: object, deadline: float) -> bool:
        """A slot for *token*, waiting until *deadline* at most; False if none came in time."""

    def release(self, token: object) -> None: ...


class Drains(Protocol):
    """Where a cut exchange's connection is read to the end of its answer, to be kept.

    Its tasks live in one nursery (a task group on asyncio) that the client's
    lifetime owns: closing the client cancels them, and each closes its connection.
    """

    def start(self, drain: Callable[[], Awaitable[None]], abandon: Callable[[], None]) -> bool:
        """Run *drain* as a task of the owner; False when the owner is closing.

        *abandon* is called instead when the task is cancelled before *drain*
        began (an asyncio task can be), so its connection is still closed.
        """

    def cancel_all(self) -> None:
        """Cancel every drain under way (the transport is closing)."""


class NetworkBackend(Protocol):
    """One event loop's primitives."""

    def is_cancellation(self, error: BaseException) -> bool:
        """Whether *error* is this loop's cancellation (not a failure of the exchange)."""

    def drains(self) -> AbstractAsyncContextManager[Drains]:
        """The owner of drains for one client's lifetime (use with ``async with``)."""

    def now(self) -> float:
        """The loop's monotonic clock (the clock every deadline here is on)."""

    def slots(self, capacity: int) -> Slots: ...

    async def connect(self, host: str, port: int, deadline: float) -> RawStream:
        """A connected stream to *host*:*port*.

        Raises:
            OSError: the connection failed.
            TimeoutError: *deadline* passed first.
        """


class NonBlockingSocket:
    """What both shells' raw streams share: a non-blocking socket looked at without waiting.

    Each shell adds ``send_all`` and ``receive_some``, which wait on its own loop.
    """

    __slots__ = ("sock",)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def receive_nowait(self) -> bytes | None:
        try:
            return self.sock.recv(READ_SIZE)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def looks_closed(self) -> bool:
        return self.receive_nowait() is not None

    def close(self) -> None:
        # Synchronous on purpose: it runs in except/finally blocks, where a
        # cancelled task may not await. No other task waits on this socket.
        self.sock.close()
