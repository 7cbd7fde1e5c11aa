"""The asyncio shell of the Elasticsearch transport: the shared pool on the asyncio backend.

Everything but the I/O waits lives once in
:mod:`trio_books.transport.connection_pool`; the waits are
:mod:`trio_books.asyncio.network`'s. Mirrors :mod:`trio_books.trio.transport`,
so the benchmark compares concurrency models rather than clients.
"""

from __future__ import annotations

from trio_books.asyncio.network import AsyncioNetwork
from trio_books.transport import http11
from trio_books.transport.connection_pool import Transport
from trio_books.transport.pool import KEEPALIVE_EXPIRY
from trio_books.transport.tls import TLSOptions


class AsyncioTransport(Transport):
    """Keep-alive pools per Elasticsearch node on asyncio (see :class:`Transport` for the arguments)."""

    def __init__(
        self,
        *,
        connections_per_node: int = 32,
        max_waiting_per_node: int = 256,
        keepalive_expiry: float = KEEPALIVE_EXPIRY,
        tls: TLSOptions | None = None,
        max_response_bytes: int = http11.MAX_RESPONSE_BYTES,
    ) -> None:
        super().__init__(
            AsyncioNetwork(),
            connections_per_node=connections_per_node,
            max_waiting_per_node=max_waiting_per_node,
            keepalive_expiry=keepalive_expiry,
            tls=tls,
            max_response_bytes=max_response_bytes,
        )
