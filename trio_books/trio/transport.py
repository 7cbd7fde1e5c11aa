"""The Trio shell of the Elasticsearch transport: the shared pool on the Trio backend.

Give it to the client (``httpx.AsyncClient(transport=TrioTransport())``) and the
rest of the code keeps httpx's API. Everything but the I/O waits lives once in
:mod:`trio_books.transport.connection_pool`; the waits are
:mod:`trio_books.trio.network`'s. Mirrors :mod:`trio_books.asyncio.transport`.
"""

from __future__ import annotations

from trio_books.transport import http11
from trio_books.transport.connection_pool import Transport
from trio_books.transport.pool import KEEPALIVE_EXPIRY
from trio_books.transport.tls import TLSOptions
from trio_books.trio.network import TrioNetwork


class TrioTransport(Transport):
    """Keep-alive pools per Elasticsearch node on Trio (see :class:`Transport` for the arguments)."""

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
            TrioNetwork(),
            connections_per_node=connections_per_node,
            max_waiting_per_node=max_waiting_per_node,
            keepalive_expiry=keepalive_expiry,
            tls=tls,
            max_response_bytes=max_response_bytes,
        )
