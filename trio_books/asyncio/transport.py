"""The asyncio shell of the Elasticsearch transport: an ``httpx.AsyncBaseTransport`` on asyncio streams.

It mirrors :mod:`trio_books.trio.transport` line for line, so the benchmark
compares concurrency models rather than clients: the same sans-IO pool and
h11 framing, with ``asyncio.open_connection`` for the streams, an
``asyncio.Semaphore`` for the slots and ``asyncio.timeout`` for the deadlines.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

import h11
import httpx

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
    """One keep-alive TCP connection and its h11 state."""

    __slots__ = ("h11", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = http11.new_connection()

    def looks_closed(self) -> bool:
        # The protocol has already seen the server's EOF (or our own close).
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        # Synchronous on purpose: it runs where a cancelled task may not await.
        self.writer.close()


class NodePool:
    """One node's pool: the bookkeeping and the semaphore that enforces it."""

    def __init__(self, host: str, port: int, capacity: int, max_waiting: int, expiry: float):
        self.host = host
        self.port = port
        self.state: Pool[Connection] = Pool(capacity, max_waiting, expiry)
        self.slots = asyncio.Semaphore(capacity)


class AsyncioTransport(httpx.AsyncBaseTransport):
    """Keep-alive pools per Elasticsearch node (see :class:`trio_books.trio.transport.TrioTransport`)."""

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

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

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
        """One request, below httpx's request and response objects (see ``RawTransport``)."""
        if self._closed:
            raise httpx.ConnectError("the transport is closed")
        pool = self._pools.get((host, port)) or self._pool(host, port)
        state = pool.state
        if not state.admit():
            raise PoolOverloaded(
                f"{host}:{port}: {state.in_use} requests in flight and {state.waiting} waiting"
            )
        if pool.slots.locked():
            await self._wait_for_slot(pool, timeouts.pool)
        else:
            await pool.slots.acquire()  # free: returns at once
        state.acquired()
        try:
            return await self._exchange(pool, method, target, headers, body, timeouts, idempotent)
        finally:
            state.released()
            pool.slots.release()

    async def _wait_for_slot(self, pool: NodePool, limit: float | None) -> None:
        pool.state.start_waiting()
        try:
            async with asyncio.timeout(limit):
                await pool.slots.acquire()
        except TimeoutError:
            self.pool_timeouts += 1
            raise httpx.PoolTimeout("no connection slot in time") from None
        finally:
            pool.state.stop_waiting()

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
            connection, expired = state.take_idle(self._now())
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
                state.stale_retries += 1
                continue
            except BaseException:
                # Cancelled, timed out or broken mid-exchange: never pool it.
                connection.close()
                state.discard()
                raise
            if http11.reusable(connection.h11):
                state.give_back(connection, self._now())
            else:
                connection.close()
                state.discard()
            return answer

    async def _connect(self, pool: NodePool, timeouts: Timeouts) -> Connection:
        try:
            async with asyncio.timeout(timeouts.connect):
                reader, writer = await asyncio.open_connection(pool.host, pool.port)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"no connection to {pool.host}:{pool.port} in time"
            ) from None
        except OSError as error:
            raise httpx.ConnectError(
                f"cannot connect to {pool.host}:{pool.port}: {error}"
            ) from error
        pool.state.opened_one()
        return Connection(reader, writer)

    async def _round_trip(
        self, connection: Connection, data: bytes, timeouts: Timeouts, fresh: bool
    ) -> http11.Answer:
        reader = http11.ResponseReader(connection.h11)
        try:
            async with asyncio.timeout(timeouts.read):
                connection.writer.write(data)
                await connection.writer.drain()
                while True:
                    answer = reader.feed(await connection.reader.read(http11.READ_SIZE))
                    if answer is not None:
                        return answer
        except TimeoutError:
            raise httpx.ReadTimeout("no answer in time") from None
        except (OSError, h11.RemoteProtocolError) as error:
            if not fresh and not reader.received_any:
                raise _Stale from error
            kind = (
                httpx.RemoteProtocolError
                if isinstance(error, h11.ProtocolError)
                else httpx.ReadError
            )
            raise kind(f"the connection failed mid-answer: {error!r}") from error

    async def aclose(self) -> None:
        """Close every idle connection; requests still in flight close their own."""
        self._closed = True
        closing = []
        for pool in self._pools.values():
            for connection in pool.state.drain():
                connection.close()
                closing.append(connection.writer)
        for writer in closing:
            with suppress(OSError):
                await writer.wait_closed()
