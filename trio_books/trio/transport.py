"""The Trio shell of the Elasticsearch transport: an ``httpx.AsyncBaseTransport`` on Trio's I/O waits.

Give it to the client (``httpx.AsyncClient(transport=TrioTransport())``) and the
rest of the code keeps httpx's API. Per node (host and port) it keeps a
:class:`~trio_books.transport.pool.Pool` of keep-alive connections, bounded by a
``trio.CapacityLimiter``; HTTP/1.1 is framed by ``h11`` through
:mod:`trio_books.transport.http11`.

Cancellation is safe at every await: the slot is released in a ``finally``,
and a connection whose exchange did not end cleanly (cancelled mid-read, timed
out, broken) is closed, never pooled. A reused keep-alive connection that the
server had closed while idle fails before any answer byte arrives: an
idempotent request is then sent once more on a fresh connection.

When a node's slots are all taken and its wait queue is full, the request is
shed at once with :class:`~trio_books.transport.adapter.PoolOverloaded`.
"""

from __future__ import annotations

import math
import socket

import h11
import httpx
import trio

from trio_books.transport import http11
from trio_books.transport.adapter import (
    PoolOverloaded,
    Timeouts,
    is_idempotent,
    origin_of,
    timeouts_of,
    to_response,
)
from trio_books.transport.pool import KEEPALIVE_EXPIRY, Pool, PoolStats


class _Stale(Exception):
    """A reused connection failed before the server answered anything."""


class Connection:
    """One keep-alive TCP connection and its h11 state.

    It owns a plain non-blocking socket, taken over from the stream that
    ``trio.open_tcp_stream`` connected: each call of trio's socket methods
    passes through the scheduler even when the kernel answers at once, and an
    exchange of the fan-out makes several. :meth:`TrioTransport._round_trip`
    waits with ``trio.lowlevel.wait_readable``/``wait_writable`` only when the
    kernel has nothing yet, and still checkpoints once per exchange.
    """

    __slots__ = ("h11", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.h11 = http11.new_connection()

    @classmethod
    def taking_over(cls, stream: trio.SocketStream) -> Connection:
        sock = socket.socket(fileno=stream.socket.detach())
        sock.setblocking(False)
        return cls(sock)

    def looks_closed(self) -> bool:
        # An idle connection has nothing to read unless the server closed it
        # (or broke the protocol): one poll of one socket, not of the pool.
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False  # nothing to read: still open
        except OSError:
            return True
        return True  # end of stream, or bytes nobody asked for

    def close(self) -> None:
        # Synchronous on purpose: it runs in except/finally blocks, where a
        # cancelled task may not await. No other task waits on this socket.
        self.sock.close()


class NodePool:
    """One node's pool: the bookkeeping and the limiter that enforces it."""

    def __init__(self, host: str, port: int, capacity: int, max_waiting: int, expiry: float):
        self.host = host
        self.port = port
        self.state: Pool[Connection] = Pool(capacity, max_waiting, expiry)
        self.limiter = trio.CapacityLimiter(capacity)


class TrioTransport(httpx.AsyncBaseTransport):
    """Keep-alive pools per Elasticsearch node, for a fan-out under one deadline.

    Args:
        connections_per_node: requests in flight to one node at once.
        max_waiting_per_node: requests that may wait for one of those; the next is shed.
        keepalive_expiry: seconds an idle connection is kept.

    httpx's ``read`` timeout bounds the whole exchange (send and the full answer),
    not each read; ``pool`` bounds the wait for a slot, ``connect`` the connect.
    """

    def __init__(
        self,
        *,
        connections_per_node: int = 32,
        max_waiting_per_node: int = 256,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
    ) -> None:
        self.connections_per_node = connections_per_node
        self.max_waiting_per_node = max_waiting_per_node
        self.keepalive_expiry = keepalive_expiry
        self._pools: dict[tuple[str, int], NodePool] = {}
        self.pool_timeouts = 0
        self._closed = False

    def stats(self) -> dict[str, PoolStats]:
        """Each node's counters, by ``host:port``."""
        return {f"{pool.host}:{pool.port}": pool.state.stats() for pool in self._pools.values()}

    def _pool(self, host: str, port: int) -> NodePool:
        pool = self._pools.get((host, port))
        if pool is None:
            pool = self._pools[host, port] = NodePool(
                host,
                port,
                self.connections_per_node,
                self.max_waiting_per_node,
                self.keepalive_expiry,
            )
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host, port = origin_of(request)
        answer = await self.exchange(
            host,
            port,
            request.method.encode(),
            request.url.raw_path,
            request.headers.raw,
            request.content,
            timeouts_of(request),
            idempotent=is_idempotent(request),
        )
        return to_response(answer, request)

    async def exchange(
        self,
        host: str,
        port: int,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: Timeouts,
        *,
        idempotent: bool,
    ) -> http11.Answer:
        """One request, below httpx's request and response objects (see :class:`RawTransport`).

        *headers* must hold ``Host`` and, with a body, ``Content-Length``.

        Raises:
            httpx.TransportError: the same errors as through httpx.
        """
        if self._closed:
            raise httpx.ConnectError("the transport is closed")
        pool = self._pools.get((host, port)) or self._pool(host, port)
        state = pool.state
        if not state.admit():
            raise PoolOverloaded(
                f"{host}:{port}: {state.in_use} requests in flight and {state.waiting} waiting"
            )
        borrower = object()  # a token per request, not per task: a task may nest calls
        # A free token means nobody waits (a release hands its token to a waiter):
        # take it without the WouldBlock exception, whose traceback is garbage for the GC.
        if pool.limiter.available_tokens:
            pool.limiter.acquire_on_behalf_of_nowait(borrower)
        else:
            await self._wait_for_slot(pool, borrower, timeouts.pool)
        state.acquired()
        try:
            return await self._exchange(pool, method, target, headers, body, timeouts, idempotent)
        finally:
            state.released()
            pool.limiter.release_on_behalf_of(borrower)

    async def _wait_for_slot(self, pool: NodePool, borrower: object, limit: float | None) -> None:
        pool.state.start_waiting()
        try:
            with trio.move_on_after(limit if limit is not None else math.inf) as waited:
                await pool.limiter.acquire_on_behalf_of(borrower)
        finally:
            pool.state.stop_waiting()
        if waited.cancelled_caught:
            self.pool_timeouts += 1
            raise httpx.PoolTimeout("no connection slot in time")

    async def _exchange(
        self,
        pool: NodePool,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: Timeouts,
        idempotent: bool,
    ) -> http11.Answer:
        state = pool.state
        while True:
            connection, expired = state.take_idle(trio.current_time())
            for old in expired:
                old.close()
            if connection is not None and connection.looks_closed():
                connection.close()
                state.discard()
                continue
            fresh = connection is None
            if connection is None:
                connection = await self._connect(pool, timeouts)
            try:
                data = http11.request_bytes(connection.h11, method, target, headers, body)
                answer = await self._round_trip(connection, data, timeouts, fresh)
            except _Stale:
                connection.close()
                state.discard()
                if not idempotent:
                    raise httpx.RemoteProtocolError(
                        "the server closed a keep-alive connection under a request that "
                        "may not be sent twice"
                    ) from None
                # The server closed it while it was idle; a fresh connection will do.
                state.stale_retries += 1
                continue
            except BaseException:
                # Cancelled, timed out or broken mid-exchange: never pool it.
                connection.close()
                state.discard()
                raise
            if http11.reusable(connection.h11):
                state.give_back(connection, trio.current_time())
            else:
                connection.close()
                state.discard()
            return answer

    async def _connect(self, pool: NodePool, timeouts: Timeouts) -> Connection:
        limit = timeouts.connect if timeouts.connect is not None else math.inf
        try:
            with trio.move_on_after(limit) as waited:
                stream = await trio.open_tcp_stream(pool.host, pool.port)
        except OSError as error:
            raise httpx.ConnectError(
                f"cannot connect to {pool.host}:{pool.port}: {error}"
            ) from error
        if waited.cancelled_caught:
            raise httpx.ConnectTimeout(f"no connection to {pool.host}:{pool.port} in time")
        pool.state.opened_one()
        return Connection.taking_over(stream)

    async def _round_trip(
        self, connection: Connection, data: bytes, timeouts: Timeouts, fresh: bool
    ) -> http11.Answer:
        reader = http11.ResponseReader(connection.h11)
        sock = connection.sock
        # A bare cancel scope rather than fail_after: this runs on every call. When
        # an enclosing deadline (a search's) comes first, the scope could never fire:
        # an infinite one costs the same to enter and nothing to register.
        limit = timeouts.read if timeouts.read is not None else math.inf
        if trio.current_time() + limit >= trio.current_effective_deadline():
            limit = math.inf
        try:
            with trio.move_on_after(limit):
                await trio.lowlevel.checkpoint_if_cancelled()
                waited = await _send_all(sock, data)
                while True:
                    try:
                        chunk = sock.recv(http11.READ_SIZE)
                    except BlockingIOError:
                        await trio.lowlevel.wait_readable(sock)
                        waited = True
                        continue
                    answer = reader.feed(chunk)
                    if answer is not None:
                        if not waited:
                            # Every exchange yields to the scheduler at least once.
                            await trio.lowlevel.cancel_shielded_checkpoint()
                        return answer
        except (OSError, h11.RemoteProtocolError) as error:
            if not fresh and not reader.received_any:
                raise _Stale from error
            kind = (
                httpx.RemoteProtocolError
                if isinstance(error, h11.ProtocolError)
                else httpx.ReadError
            )
            raise kind(f"the connection failed mid-answer: {error!r}") from error
        # Only a timed-out read gets here; the caller closes the connection.
        raise httpx.ReadTimeout("no answer in time")

    async def aclose(self) -> None:
        """Close every idle connection; requests still in flight close their own."""
        self._closed = True
        for pool in self._pools.values():
            for connection in pool.state.drain():
                connection.close()
        await trio.lowlevel.checkpoint()


async def _send_all(sock: socket.socket, data: bytes) -> bool:
    """Send *data*, waiting only while the kernel's buffer is full; True if it waited."""
    view, waited = memoryview(data), False
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            waited = True
            continue
        view = view[sent:]
    return waited
