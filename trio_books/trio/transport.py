"""The Trio shell of the Elasticsearch transport: the shared pool on the Trio backend.

Give it to the client (``httpx.AsyncClient(transport=TrioTransport())``) and the
rest of the code keeps httpx's API. Everything but the I/O waits lives once in
:mod:`trio_books.transport.connection_pool`; the waits are
:mod:`trio_books.trio.network`'s. Mirrors :mod:`trio_books.asyncio.transport`.
"""

from __future__ import annotations

from trio_books.transport.connection_pool import Transport
from trio_books.trio.network import TrioNetwork


class TrioTransport(Transport):
    """Keep-alive pools per Elasticsearch node on Trio (see :class:`Transport` for the arguments)."""

    network = TrioNetwork
