"""The asyncio shell of the Elasticsearch transport: the shared pool on the asyncio backend.

Everything but the I/O waits lives once in
:mod:`trio_books.transport.connection_pool`; the waits are
:mod:`trio_books.asyncio.network`'s. Mirrors :mod:`trio_books.trio.transport`,
so the benchmark compares concurrency models rather than clients.
"""

from __future__ import annotations

from trio_books.asyncio.network import AsyncioNetwork
from trio_books.transport.connection_pool import Transport


class AsyncioTransport(Transport):
    """Keep-alive pools per Elasticsearch node on asyncio (see :class:`Transport` for the arguments)."""

    network = AsyncioNetwork
