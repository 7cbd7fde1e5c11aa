"""The Elasticsearch transport, written once over a :class:`~trio_books.transport.backend.NetworkBackend`.

An ``httpx.AsyncBaseTransport``: give it to the client and the rest of the code
keeps httpx's API. Per node (scheme, host and port) it keeps a
:class:`~trio_books.transport.pool.Pool` of keep-alive connections, bounded by
the backend's slots; HTTP/1.1 is framed by ``h11``
(:mod:`~trio_books.transport.http11`), ``https://`` nodes get TLS
(:mod:`~trio_books.transport.tls`). The Trio and asyncio shells are this class
with their backend (:mod:`trio_books.trio.transport`,
:mod:`trio_books.asyncio.transport`), after httpcore's ``_backends``.

Cancellation is safe at every await: the slot is released in a ``finally``,
and a connection whose exchange did not end cleanly (timed out, broken, over
the size cap) is closed, never pooled. One cut by its caller's deadline after
the request went out is handed to a drain: a task of the client's own nursery
(:meth:`~trio_books.transport.backend.NetworkBackend.drains`) that reads the
rest of the answer within :data:`DRAIN_SECONDS` and pools the connection, so a
client whose searches keep missing a short deadline does not reconnect for
each call. A drain that runs out of time closes it. A reused keep-alive
connection that the server had closed while idle fails before any answer byte
arrives: an idempotent request is then sent once more on a fresh connection.
When a node's slots are all taken and its wait queue is full, the request is
shed at once with :class:`~trio_books.transport.adapter.PoolOverloaded`.

An ``https://`` node is never spoken to in cleartext: its pool only ever holds
connections whose TLS handshake (and certificate check) succeeded.
"""

from __future__ import annotations

import math
import ssl
from typing import ClassVar

import h11
import httpx

from trio_books.transport import http11
from trio_books.transport.adapter import (
    AnswerTooLarge,
    Origin,
    PoolOverloaded,
    Timeouts,
    is_idempotent,
    origin_of,
    timeouts_of,
    to_response,
)
from trio_books.transport.backend import ByteStream, Drains, NetworkBackend, Slots
from trio_books.transport.pool import KEEPALIVE_EXPIRY, Pool, PoolStats
from trio_books.transport.tls import SpeaksTLS, TLSOptions, TLSStream, client_context

# How long a drain may read the rest of a cut exchange's answer: longer than a
# slow search's overrun, far shorter than a keep-alive connection's worth.
DRAIN_SECONDS = 2.0
# Drains a node may have at once, per slot: a cut call frees its slot at once,
# so a node busy cutting calls has several drains per slot going (one per slot
# kept only about a third of the connections in bench-churn; four keep nearly
# all), and past this bound a new connection costs less than one more drain.
DRAINS_PER_SLOT = 4


class _Stale(Exception):
    """A reused connection failed before the server answered anything."""


class Connection:
    """One keep-alive connection: its stream (plain or TLS) and its h11 state."""

    __slots__ = ("h11", "stream")

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.h11 = http11.new_connection()


class NodePool:
    """One node's pool: the bookkeeping and the slots that enforce it."""

    __slots__ = ("origin", "slots", "state")

    def __init__(self, origin: Origin, state: Pool[Connection], slots: Slots) -> None:
        self.origin = origin
        self.state = state
        self.slots = slots


def _limit(seconds: float | None) -> float:
    return math.inf if seconds is None else seconds


class Transport(httpx.AsyncBaseTransport):
    """Keep-alive pools per Elasticsearch node, for a fan-out under one deadline.

    A shell names its backend in :attr:`network` (or a test passes one as *backend*).

    Args:
        backend: the event loop's primitives (default: a new :attr:`network`).
        connections_per_node: requests in flight to one node at once.
        max_waiting_per_node: requests that may wait for one of those; the next is shed.
        keepalive_expiry: seconds an idle connection is kept.
        tls: how ``https://`` nodes are verified (default: the system's trust store).
        max_response_bytes: an answer's body past this closes the connection and
            fails the call with :class:`~trio_books.transport.adapter.AnswerTooLarge`.
        drain_seconds: how long a drain may read a cut exchange's answer (0: never drain).

    httpx's ``read`` timeout bounds the whole exchange (send and the full answer),
    not each read; ``pool`` bounds the wait for a slot, ``connect`` the connect
    (and the TLS handshake).
    """

    network: ClassVar[type[NetworkBackend] | None] = None

    def __init__(
        self,
        *,
        backend: NetworkBackend | None = None,
        connections_per_node: int = 32,
        max_waiting_per_node: int = 256,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
        tls: TLSOptions | None = None,
        max_response_bytes: int = http11.MAX_RESPONSE_BYTES,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        if backend is None:
            if self.network is None:
                raise TypeError("a Transport needs a backend: use a shell's, or pass one")
            backend = self.network()
        self.backend = backend
        self.connections_per_node = connections_per_node
        self.max_waiting_per_node = max_waiting_per_node
        self.keepalive_expiry = keepalive_expiry
        self.tls = tls or TLSOptions()
        self.max_response_bytes = max_response_bytes
        # Built on the first https connection, then shared by all of them:
        # loading the trust store costs milliseconds, once.
        self._ssl_context: ssl.SSLContext | None = None
        self._pools: dict[Origin, NodePool] = {}
        self.pool_timeouts = 0
        self._closed = False
        # Set while a client owns this transport (es.opening): without it, a cut
        # exchange's connection is closed.
        self.drains: Drains | None = None
        self.drain_seconds = drain_seconds

    def stats(self) -> dict[str, PoolStats]:
        """Each node's counters, by ``host:port`` (``https://host:port`` for TLS nodes)."""
        return {
            (f"{o.host}:{o.port}" if o.scheme == "http" else str(o)): pool.state.stats()
            for o, pool in self._pools.items()
        }

    def _pool(self, origin: Origin) -> NodePool:
        pool = self._pools.get(origin)
        if pool is None:
            state: Pool[Connection] = Pool(
                self.connections_per_node, self.max_waiting_per_node, self.keepalive_expiry
            )
            pool = NodePool(origin, state, self.backend.slots(self.connections_per_node))
            self._pools[origin] = pool
        return pool

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of this transport's lifetime (built once, on first use)."""
        if self._ssl_context is None:
            self._ssl_context = client_context(self.tls)
        return self._ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self.exchange(
            origin_of(request),
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
        origin: Origin,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: Timeouts,
        *,
        idempotent: bool,
    ) -> http11.Answer:
        """One request, below httpx's request and response objects (see ``RawTransport``).

        *headers* must hold ``Host`` and, with a body, ``Content-Length``.

        Raises:
            httpx.TransportError: the same errors as through httpx.
        """
        if self._closed:
            raise httpx.ConnectError("the transport is closed")
        pool = self._pools.get(origin) or self._pool(origin)
        state = pool.state
        if not state.admit():
            raise PoolOverloaded(
                f"{origin}: {state.in_use} requests in flight and {state.waiting} waiting"
            )
        borrower = object()  # a token per request, not per task: a task may nest calls
        if pool.slots.free():
            await pool.slots.acquire(borrower, math.inf)
        else:
            await self._wait_for_slot(pool, borrower, timeouts.pool)
        state.acquired()
        try:
            return await self._exchange(pool, method, target, headers, body, timeouts, idempotent)
        finally:
            state.released()
            pool.slots.release(borrower)

    async def _wait_for_slot(self, pool: NodePool, borrower: object, limit: float | None) -> None:
        pool.state.start_waiting()
        try:
            got = await pool.slots.acquire(borrower, self.backend.now() + _limit(limit))
        finally:
            pool.state.stop_waiting()
        if not got:
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
        backend = self.backend
        while True:
            connection, expired = state.take_idle(backend.now())
            for old in expired:
                old.stream.close()
            if connection is not None and connection.stream.looks_closed():
                connection.stream.close()
                state.discard()
                continue
            fresh = connection is None
            if connection is None:
                connection = await self._connect(pool, timeouts)
            reader = http11.ResponseReader(connection.h11, self.max_response_bytes)
            try:
                data = http11.request_bytes(connection.h11, method, target, headers, body)
                answer = await self._round_trip(
                    connection, reader, data, timeouts, fresh, pool.origin
                )
            except _Stale:
                connection.stream.close()
                state.discard()
                if not idempotent:
                    raise httpx.RemoteProtocolError(
                        "the server closed a keep-alive connection under a request that "
                        "may not be sent twice"
                    ) from None
                # The server closed it while it was idle; a fresh connection will do.
                state.stale_retries += 1
                continue
            except BaseException as error:
                # Cut by the caller after the request went out: read on elsewhere.
                if not (
                    reader.request_sent
                    and backend.is_cancellation(error)
                    and self._hand_to_drain(pool, connection, reader)
                ):
                    # Timed out, broken, or cut mid-send: never pool it.
                    connection.stream.close()
                    state.discard()
                raise
            if http11.reusable(connection.h11):
                state.give_back(connection, backend.now())
            else:
                connection.stream.close()
                state.discard()
            return answer

    async def _connect(self, pool: NodePool, timeouts: Timeouts) -> Connection:
        origin = pool.origin
        deadline = self.backend.now() + _limit(timeouts.connect)
        try:
            raw = await self.backend.connect(origin.host, origin.port, deadline)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {origin} in time") from None
        except OSError as error:
            raise httpx.ConnectError(f"cannot connect to {origin}: {error}") from error
        stream: ByteStream = raw
        if origin.scheme == "https":
            try:
                stream = await TLSStream.handshake(
                    raw, self.ssl_context(), origin.host, deadline, self.tls.assert_fingerprint
                )
            except TimeoutError:
                raw.close()
                raise httpx.ConnectTimeout(f"no TLS handshake with {origin} in time") from None
            except OSError as error:
                raw.close()
                raise httpx.ConnectError(
                    f"the TLS handshake with {origin} failed: {error}"
                ) from error
            except BaseException:
                raw.close()
                raise
        pool.state.opened_one()
        return Connection(stream)

    async def _round_trip(
        self,
        connection: Connection,
        reader: http11.ResponseReader,
        data: bytes,
        timeouts: Timeouts,
        fresh: bool,
        origin: Origin,
    ) -> http11.Answer:
        stream = connection.stream
        deadline = self.backend.now() + _limit(timeouts.read)
        try:
            await stream.send_all(data, deadline)
            reader.request_sent = True
            while True:
                answer = reader.feed(await stream.receive_some(deadline))
                if answer is not None:
                    return answer
                # A peer that sends without end never waits for the socket:
                # the limit is checked once per chunk as well.
                if self.backend.now() > deadline:
                    raise TimeoutError
        except TimeoutError:
            raise httpx.ReadTimeout("no answer in time") from None
        except http11.ResponseTooLarge as error:
            raise AnswerTooLarge(str(error)) from error
        except http11.TLSAnswer as error:
            raise SpeaksTLS(str(error)) from error
        except (OSError, h11.RemoteProtocolError) as error:
            if not fresh and not reader.received_any:
                raise _Stale from error
            if fresh and not reader.received_any and origin.scheme == "http":
                # What a TLS port does with a plain HTTP request (Elasticsearch's
                # among them): close at once, without a byte.
                raise SpeaksTLS(
                    "the node closed a new connection without answering: "
                    "if it speaks TLS, use https://"
                ) from error
            kind = (
                httpx.RemoteProtocolError
                if isinstance(error, h11.ProtocolError)
                else httpx.ReadError
            )
            raise kind(f"the connection failed mid-answer: {error!r}") from error

    def _hand_to_drain(
        self, pool: NodePool, connection: Connection, reader: http11.ResponseReader
    ) -> bool:
        """Start a drain of *connection*'s answer; False if none may start (then close it)."""
        state = pool.state
        if (
            self.drains is None
            or self._closed
            or self.drain_seconds <= 0
            or not getattr(connection.stream, "intact", True)
            or state.draining >= DRAINS_PER_SLOT * state.capacity
        ):
            return False
        reader.keep_body = False
        # Counted before the task exists: it may end before start() returns.
        state.draining += 1

        async def drain() -> None:
            await self._drain(pool, connection, reader)

        def abandon() -> None:
            state.draining -= 1
            connection.stream.close()
            state.discard()

        if self.drains.start(drain, abandon):
            return True
        state.draining -= 1
        return False

    async def _drain(
        self, pool: NodePool, connection: Connection, reader: http11.ResponseReader
    ) -> None:
        """Read the rest of a cut exchange's answer, then pool the connection or close it."""
        state = pool.state
        deadline = self.backend.now() + self.drain_seconds
        kept = False
        try:
            while reader.feed(await connection.stream.receive_some(deadline)) is None:
                if self.backend.now() > deadline:
                    break
            else:
                kept = http11.reusable(connection.h11) and not self._closed
        except Exception:
            kept = False  # timed out, broken, too large: closed below
        finally:
            state.draining -= 1
            if kept:
                state.drained += 1
                state.give_back(connection, self.backend.now())
            else:
                connection.stream.close()
                state.discard()

    async def aclose(self) -> None:
        """Close every idle connection and end every drain; requests in flight close their own."""
        self._closed = True
        if self.drains is not None:
            # Their nursery may outlive this transport (a serving app's): end them now.
            self.drains.cancel_all()
        for pool in self._pools.values():
            for connection in pool.state.drain():
                connection.stream.close()


def pool_counters(transport: object) -> dict[str, int]:
    """The transport's connection counters, summed over its nodes, as log fields.

    Read from the live pools (:meth:`Transport.stats`) when asked, not kept twice;
    empty for a transport that is not the project's (httpx's stock one has none).
    The benchmark reads them from the serving app's last line to count the
    connections a run opened.
    """
    if not isinstance(transport, Transport):
        return {}
    nodes = transport.stats().values()
    return {
        "es_connections_opened": sum(node.opened for node in nodes),
        "es_connections_reused": sum(node.reused for node in nodes),
        "es_connections_discarded": sum(node.discarded for node in nodes),
        "es_stale_retries": sum(node.stale_retries for node in nodes),
        "es_connections_drained": sum(node.drained for node in nodes),
    }
