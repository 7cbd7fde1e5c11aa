"""Opening the one Elasticsearch client of a lifetime, with the transport its configuration asks for.

:func:`open_elasticsearch` is how every caller (the builds, the loader, the
commands, demos, drills and benchmarks) reaches Elasticsearch: the transport,
its TLS context and the credentials are built here from the
:class:`~trio_books.es.connection.ConnectionConfig`, once. httpx's own
transports (``stock``, ``sharded``) stay selectable as the benchmark's baselines.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import httpx

from trio_books.errors import UsageError
from trio_books.es.client import Elasticsearch
from trio_books.es.connection import ConnectionConfig
from trio_books.transport.backend import Drains
from trio_books.transport.connection_pool import Transport
from trio_books.transport.tls import client_context


def http_limits(max_connections: int) -> httpx.Limits:
    """Connection limits for the shared client.

    ``max_keepalive_connections`` equals ``max_connections``: a smaller value
    makes httpcore close and reopen connections under fan-out load.
    """
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=30.0,
    )


def http_timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds)


POOL_SHARD_SIZE = 8
"""Connections per pool of :class:`ShardedTransport`."""


def stock_transport(
    max_connections: int, *, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncHTTPTransport:
    """httpx's own transport as it ships, one httpcore pool: the benchmark's baseline."""
    return httpx.AsyncHTTPTransport(limits=http_limits(max_connections), verify=verify)


class ShardedTransport(httpx.AsyncBaseTransport):
    """Several small connection pools used in turn, instead of one large pool.

    httpcore's pool does work quadratic in its number of connections each time
    a request starts or ends (it re-scans every connection, polling idle
    sockets, and queued requests against all of them). Under a fan-out load of
    hundreds of concurrent requests that scan, not the network, became the
    service's main CPU cost; pools of :data:`POOL_SHARD_SIZE` keep it small.
    """

    def __init__(self, max_connections: int, *, verify: ssl.SSLContext | bool = True) -> None:
        shards = max(1, -(-max_connections // POOL_SHARD_SIZE))
        per_shard = -(-max_connections // shards)
        self.shards = [
            httpx.AsyncHTTPTransport(limits=http_limits(per_shard), verify=verify)
            for _ in range(shards)
        ]
        self._next = itertools.cycle(self.shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()


def open_http_client(
    *,
    timeout: float,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` over *transport* (use it with ``async with``).

    Prefer :func:`open_elasticsearch`, which builds the transport from the
    connection configuration; this is for a transport the caller made.
    """
    return httpx.AsyncClient(
        timeout=http_timeout(timeout),
        transport=transport or ShardedTransport(max_connections),
    )


Build = Literal["trio", "asyncio"]


def own_transport(
    config: ConnectionConfig,
    build: Build,
    *,
    pool_size: int | None = None,
    kind: type[Transport] | None = None,
) -> Transport:
    """The project's transport for *build*, as *config* describes it.

    Args:
        kind: a subclass of the build's transport to make instead (tests
            observe and perturb the production path through one).
    """
    options: dict[str, Any] = {
        "connections_per_node": pool_size or config.pool_size,
        "max_waiting_per_node": config.pool_queue,
        "tls": config.tls,
        "max_response_bytes": config.max_response_bytes,
        "drain_seconds": config.drain_seconds,
    }
    if kind is not None:
        return kind(**options)
    if build == "trio":
        from trio_books.trio.transport import TrioTransport

        return TrioTransport(**options)
    from trio_books.asyncio.transport import AsyncioTransport

    return AsyncioTransport(**options)


def build_clock(build: Build) -> Callable[[], float]:
    """The event loop's clock (the transport's deadlines and node backoff share it)."""
    if build == "trio":
        from trio_books.trio.network import TrioNetwork

        return TrioNetwork().now
    from trio_books.asyncio.network import AsyncioNetwork

    return AsyncioNetwork().now


def es_transport(config: ConnectionConfig, build: Build) -> httpx.AsyncBaseTransport:
    """The transport *config* asks for: the project's own, or one of httpx's (baselines).

    Raises:
        UsageError: a setting httpx's transports cannot honour (a pinned fingerprint).
    """
    if config.transport == "trio_books":
        return own_transport(config, build)
    if config.tls.assert_fingerprint is not None and any(
        node.scheme == "https" for node in config.nodes
    ):
        raise UsageError(
            "es_ssl_assert_fingerprint needs the project's transport (es_transport=trio_books)"
        )
    verify: ssl.SSLContext | bool = client_context(config.tls)
    if config.transport == "stock":
        return stock_transport(config.max_connections, verify=verify)
    return ShardedTransport(config.max_connections, verify=verify)


@asynccontextmanager
async def open_elasticsearch(
    config: ConnectionConfig,
    build: Build = "trio",
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    call_seconds: float | None = None,
    drains: Drains | None = None,
    below_httpx: bool = True,
) -> AsyncIterator[Elasticsearch]:
    """The one client of a lifetime (a serving app's, a loader run's, a command's).

    Every caller reaches Elasticsearch through this: it builds the transport
    from *config*, and with it the TLS context and the credentials, once.

    Args:
        config: from :func:`~trio_books.es.connection.connection_config`.
        build: whose event loop runs it.
        transport: a transport to use instead: the project's own (a test's
            subclass observing it), or an httpx transport, which sees every call
            through httpx's objects.
        call_seconds: seconds per call instead of ``config.timeout``.
        drains: where the project's transport reads on cut exchanges (a
            serving app's own nursery); by default, a nursery (task set) of
            this client's own, closed with it.
        below_httpx: whether the project's transport also takes calls below
            httpx's objects, as in production (the benchmark measures both).
    """
    chosen = transport or es_transport(config, build)
    async with AsyncExitStack() as stack:
        if isinstance(chosen, Transport):
            # The drains of cut exchanges live as long as the client, in a nursery
            # (a task set) of its own, entered first so closed after it; or in the
            # caller's, when it holds the client across a yield (a lifespan).
            chosen.drains = drains or await stack.enter_async_context(chosen.backend.drains())
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                timeout=http_timeout(call_seconds or config.timeout), transport=chosen
            )
        )
        # Our own transport also takes calls below httpx's objects; an httpx
        # transport given by a caller sees every call through httpx.
        raw = chosen if isinstance(chosen, Transport) and below_httpx else None
        es = Elasticsearch(http, config, raw=raw, clock=build_clock(build))
        es.transport = chosen
        yield es
