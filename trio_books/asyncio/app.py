"""The asyncio build's app: Quart, with one httpx client per serving lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import httpx
from quart import Quart

from trio_books.api.application import METRICS_KEY, TALLY_KEY, configure_app
from trio_books.api.routes import install_service
from trio_books.api.service import SearchService
from trio_books.asyncio.fanout import CONCURRENCY
from trio_books.asyncio.graceful import AsyncioGracefulCut
from trio_books.es.connection import connection_config
from trio_books.es.opening import open_elasticsearch
from trio_books.settings import Settings, load_settings
from trio_books.transport.connection_pool import pool_counters

TRANSPORT_KEY = "trio_books.transport"
log = logging.getLogger("trio_books.app")


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Quart:
    """Build the asyncio app.

    Args:
        settings: defaults to :func:`~trio_books.settings.load_settings`.
        transport: a transport for the Elasticsearch client instead of the
            configured one (tests observe and perturb the real one through it).
    """
    settings = settings or load_settings()
    app = Quart("trio_books")
    configure_app(app, settings, AsyncioGracefulCut)

    @app.while_serving
    async def lifespan() -> AsyncGenerator[None, None]:
        # The client lives exactly as long as serving does: opened before the
        # first request, closed (with its connections) after the last.
        async with open_elasticsearch(
            connection_config(settings), "asyncio", transport=transport
        ) as es:
            app.extensions[TRANSPORT_KEY] = es.transport
            service = SearchService(es, settings, CONCURRENCY, app.extensions.get(METRICS_KEY))
            install_service(app, service)
            # Logged once; an engine that does not answer yet is asked again by /readyz.
            await service.identify_engine()
            try:
                yield
            finally:
                install_service(app, None)
                # Counted while the pools are still open (closing drains them).
                counters = pool_counters(es.transport)
        # Every request has left the app by now: begun and answered are final.
        counters.update(app.extensions[TALLY_KEY].counters())
        log.info("closed the Elasticsearch client", extra=counters)

    return app
