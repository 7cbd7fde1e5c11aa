"""The transport's pool loop, tested directly against a scripted backend, on both event loops.

The backend here is a stand-in named as such: its "sockets" answer from a
script in memory and its clock moves only when the script says so. Every test
runs the same coroutine under ``trio.run`` and ``asyncio.run``: the pool loop,
the stale-connection retry, the caps and TLS's first bytes are written once in
:mod:`trio_books.transport.connection_pool`, so they must behave the same on
both.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import httpx
import pytest
import trio

from trio_books.transport.adapter import AnswerTooLarge, Origin, PoolOverloaded, Timeouts
from trio_books.transport.backend import Drains
from trio_books.transport.connection_pool import Transport
from trio_books.transport.http11 import Answer
from trio_books.transport.tls import SpeaksTLS
from trio_books.trio.network import TrioNetwork

PLAIN = Origin("http", "node.test", 9200)
SECURE = Origin("https", "node.test", 9243)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
NO_LIMITS = Timeouts(None, None, None, None)

Script = Callable[[bytes], Iterator[bytes]]
"""What a scripted peer answers to one request's bytes: the chunks it sends back."""


@dataclass
class ScriptedSocket:
    """A connection to the scripted peer: it answers each request from the script."""

    backend: ScriptedBackend
    number: int
    pending: Iterator[bytes] = field(default_factory=lambda: iter(()))
    sent: bytearray = field(default_factory=bytearray)
    closed: bool = False
    # What an idle look finds: None (nothing), b"" (the peer closed) or stray bytes.
    idle: bytes | None = None

    async def send_all(self, data: bytes, deadline: float) -> None:
        self.sent += data
        self.pending = self.backend.script(bytes(data))

    async def receive_some(self, deadline: float) -> bytes:
        # Bytes that are already there never wait, so no deadline fires here:
        # the transport itself must notice the time passing.
        self.backend.clock += self.backend.tick
        return next(self.pending, b"")

    def receive_nowait(self) -> bytes | None:
        return self.idle

    def looks_closed(self) -> bool:
        return self.idle is not None

    def close(self) -> None:
        self.closed = True


@dataclass
class CountingSlots:
    """Slots that never wait: a request finds one free or gives up at once."""

    capacity: int
    taken: int = 0

    def free(self) -> bool:
        return self.taken < self.capacity

    async def acquire(self, token: object, deadline: float) -> bool:
        if self.taken >= self.capacity:
            return False
        self.taken += 1
        return True

    def release(self, token: object) -> None:
        self.taken -= 1


@dataclass
class ScriptedBackend:
    """A stand-in backend: connections to a scripted peer, and a clock moved by the test."""

    script: Script
    clock: float = 0.0
    # Seconds each receive takes on the clock.
    tick: float = 0.0
    refuse: bool = False
    sockets: list[ScriptedSocket] = field(default_factory=list)

    def now(self) -> float:
        return self.clock

    def slots(self, capacity: int) -> CountingSlots:
        return CountingSlots(capacity)

    def is_cancellation(self, error: BaseException) -> bool:
        return isinstance(error, trio.Cancelled | asyncio.CancelledError)

    def drains(self) -> AbstractAsyncContextManager[Drains]:
        return TrioNetwork().drains()

    async def connect(self, host: str, port: int, deadline: float) -> ScriptedSocket:
        if self.refuse:
            raise ConnectionRefusedError(111, "Connection refused")
        sock = ScriptedSocket(self, len(self.sockets) + 1)
        self.sockets.append(sock)
        return sock


def answering(*chunks: bytes) -> Script:
    def script(request: bytes) -> Iterator[bytes]:
        return iter(chunks)

    return script


def on_both_loops(test: Callable[[], Awaitable[None]]) -> None:
    """Run *test* under Trio, then under asyncio."""
    trio.run(test)
    asyncio.run(test())  # type: ignore[arg-type]


def get(
    transport: Transport, origin: Origin = PLAIN, *, idempotent: bool = True
) -> Awaitable[Answer]:
    head = [(b"host", b"node.test")]
    return transport.exchange(origin, b"GET", b"/", head, b"", NO_LIMITS, idempotent=idempotent)


def test_a_keep_alive_connection_is_reused() -> None:
    async def test() -> None:
        backend = ScriptedBackend(answering(OK))
        transport = Transport(backend=backend)
        for _ in range(3):
            assert (await get(transport)).body == b"ok"
        (stats,) = transport.stats().values()
        assert (stats.opened, stats.reused, len(backend.sockets)) == (1, 2, 1)

    on_both_loops(test)


def test_an_idle_connection_the_peer_closed_is_dropped_not_used() -> None:
    async def test() -> None:
        backend = ScriptedBackend(answering(OK))
        transport = Transport(backend=backend)
        await get(transport)
        backend.sockets[0].idle = b""  # the peer closed it while it sat in the pool
        await get(transport)
        assert backend.sockets[0].closed
        assert len(backend.sockets) == 2

    on_both_loops(test)


def test_a_stale_connection_is_retried_once_for_idempotent_requests_only() -> None:
    async def test() -> None:
        replies = iter([[OK], [], [OK], []])

        def script(request: bytes) -> Iterator[bytes]:
            return iter(next(replies))

        backend = ScriptedBackend(script)
        transport = Transport(backend=backend)
        await get(transport)
        # The reused connection ends before any answer byte: sent again on a fresh one.
        assert (await get(transport)).body == b"ok"
        (stats,) = transport.stats().values()
        assert stats.stale_retries == 1
        with pytest.raises(httpx.RemoteProtocolError, match="may not be sent twice"):
            await get(transport, idempotent=False)

    on_both_loops(test)


def test_connection_close_answers_are_not_pooled() -> None:
    async def test() -> None:
        closing = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        backend = ScriptedBackend(answering(closing))
        transport = Transport(backend=backend)
        await get(transport)
        await get(transport)
        assert len(backend.sockets) == 2
        assert backend.sockets[0].closed

    on_both_loops(test)


def test_an_answer_over_the_cap_by_content_length_fails_and_closes() -> None:
    async def test() -> None:
        big = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"
        backend = ScriptedBackend(answering(big))
        transport = Transport(backend=backend, max_response_bytes=4096)
        with pytest.raises(AnswerTooLarge):
            await get(transport)
        assert backend.sockets[0].closed
        (stats,) = transport.stats().values()
        assert (stats.in_use, stats.idle) == (0, 0)

    on_both_loops(test)


def test_a_chunked_answer_over_the_cap_fails_while_reading() -> None:
    async def test() -> None:
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
        sent = 0

        def endless(request: bytes) -> Iterator[bytes]:
            nonlocal sent
            yield head
            while True:
                sent += 1
                yield chunk

        backend = ScriptedBackend(endless)
        transport = Transport(backend=backend, max_response_bytes=64 * 1024)
        with pytest.raises(AnswerTooLarge):
            await get(transport)
        assert backend.sockets[0].closed
        # Stopped at the cap, not later: 64 chunks of 1 KiB fit, the 65th does not.
        assert sent == 65

    on_both_loops(test)


def test_a_peer_that_never_stops_sending_cannot_outlive_the_read_limit() -> None:
    async def test() -> None:
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

        def endless(request: bytes) -> Iterator[bytes]:
            yield head
            while True:
                yield b"1\r\nx\r\n"

        # Every chunk arrives at once, 10 ms apart on the clock: nothing ever waits.
        backend = ScriptedBackend(endless, tick=0.01)
        # The cap would stop it too, but only after 100,000 chunks.
        transport = Transport(backend=backend, max_response_bytes=100_000)
        limits = Timeouts(None, 1.0, None, None)
        with pytest.raises(httpx.ReadTimeout):
            await transport.exchange(
                PLAIN, b"GET", b"/", [(b"host", b"x")], b"", limits, idempotent=True
            )
        assert 1.0 < backend.clock < 1.05

    on_both_loops(test)


def test_a_tls_answer_to_plain_http_says_to_use_https() -> None:
    async def test() -> None:
        # A TLS alert record, as a TLS port answers bytes that are not TLS.
        backend = ScriptedBackend(answering(b"\x15\x03\x03\x00\x02\x02\x46"))
        with pytest.raises(SpeaksTLS, match="use https://"):
            await get(Transport(backend=backend))

    on_both_loops(test)


def test_an_https_node_gets_a_tls_client_hello_never_cleartext() -> None:
    async def test() -> None:
        backend = ScriptedBackend(answering())  # the peer hangs up at once
        transport = Transport(backend=backend)
        with pytest.raises(httpx.ConnectError, match="TLS handshake"):
            await get(transport, SECURE)
        (sock,) = backend.sockets
        assert sock.sent[:2] == b"\x16\x03"  # a TLS handshake record
        assert b"GET" not in sock.sent
        assert sock.closed
        # The pools never mix schemes: the https node has its own.
        assert list(transport.stats()) == ["https://node.test:9243"]

    on_both_loops(test)


def test_a_refused_connection_is_a_connect_error_and_frees_the_slot() -> None:
    async def test() -> None:
        backend = ScriptedBackend(answering(OK), refuse=True)
        transport = Transport(backend=backend, connections_per_node=1)
        for _ in range(2):
            with pytest.raises(httpx.ConnectError):
                await get(transport)
        (stats,) = transport.stats().values()
        assert stats.in_use == 0

    on_both_loops(test)


def test_a_full_node_sheds_at_once_and_a_slot_wait_times_out() -> None:
    async def test() -> None:
        backend = ScriptedBackend(answering(OK))
        transport = Transport(backend=backend, connections_per_node=1, max_waiting_per_node=0)
        pool = transport._pool(PLAIN)
        pool.state.acquired()  # one request holds the only slot
        with pytest.raises(PoolOverloaded):
            await get(transport)
        waiting = Transport(backend=backend, connections_per_node=1, max_waiting_per_node=4)
        held = waiting._pool(PLAIN)
        held.state.acquired()
        assert await held.slots.acquire(object(), math.inf)
        with pytest.raises(httpx.PoolTimeout):
            await get(waiting)
        assert waiting.pool_timeouts == 1

    on_both_loops(test)
