"""The asyncio build's app: Quart, with one httpx client per serving lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import httpx
from quart import Quart

from trio_books.api.application import configure_app
from trio_books.api.routes import install_service
from trio_books.api.service import SearchService
from trio_books.asyncio.fanout import CONCURRENCY
from trio_books.asyncio.transport import AsyncioTransport
from trio_books.es.client import Elasticsearch, open_http_client, stock_transport
from trio_books.settings import Settings, load_settings

TRANSPORT_KEY = "trio_books.transport"
log = logging.getLogger("trio_books.app")


def es_transport(settings: Settings) -> httpx.AsyncBaseTransport | None:
    """The transport *settings* ask for (``None``: httpx's pools, sharded)."""
    if settings.es_transport == "stock":
        return stock_transport(settings.es_max_connections)
    if settings.es_transport == "sharded":
        return None
    return AsyncioTransport(
        connections_per_node=settings.es_pool_size,
        max_waiting_per_node=settings.es_pool_queue,
    )


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Quart:
    """Build the asyncio app.

    Args:
        settings: defaults to :func:`~trio_books.settings.load_settings`.
        transport: an httpx transport for the Elasticsearch client (tests wrap
            the real one to record when each call starts and ends).
    """
    settings = settings or load_settings()
    app = Quart("trio_books")
    configure_app(app, settings)

    @app.while_serving
    async def lifespan() -> AsyncGenerator[None, None]:
        # The client lives exactly as long as serving does: opened before the
        # first request, closed (with its connections) after the last.
        chosen = transport or es_transport(settings)
        app.extensions[TRANSPORT_KEY] = chosen
        async with open_http_client(
            timeout=settings.es_timeout,
            max_connections=settings.es_max_connections,
            transport=chosen,
        ) as http:
            # Our own transport also takes calls below httpx's objects; one
            # given by a caller (a test's recorder) sees every call through httpx.
            raw = chosen if isinstance(chosen, AsyncioTransport) and transport is None else None
            es = Elasticsearch(http, settings.es_urls, retries=settings.es_retries, raw=raw)
            install_service(app, SearchService(es, settings, CONCURRENCY))
            try:
                yield
            finally:
                install_service(app, None)
        log.info("closed the Elasticsearch client")

    return app
