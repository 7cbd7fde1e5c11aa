"""The Trio build's app: Quart-Trio, with one httpx client per serving lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator

import httpx
from quart_trio import QuartTrio

from trio_books.api.application import METRICS_KEY, TALLY_KEY, configure_app
from trio_books.api.routes import install_service
from trio_books.api.service import SearchService
from trio_books.es.connection import connection_config
from trio_books.es.opening import open_elasticsearch
from trio_books.settings import Settings, load_settings
from trio_books.transport.connection_pool import pool_counters
from trio_books.trio.asgi import shielded_send
from trio_books.trio.fanout import CONCURRENCY
from trio_books.trio.graceful import TrioGracefulCut
from trio_books.trio.network import TrioDrains

TRANSPORT_KEY = "trio_books.transport"


log = logging.getLogger("trio_books.app")


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> QuartTrio:
    """Build the Trio app.

    Args:
        settings: defaults to :func:`~trio_books.settings.load_settings`.
        transport: a transport for the Elasticsearch client instead of the
            configured one (tests observe and perturb the real one through it).
    """
    settings = settings or load_settings()
    app = QuartTrio("trio_books")
    configure_app(app, settings, TrioGracefulCut)
    if settings.server_shell == "hypercorn":
        # Around everything, the door included: every answer goes out through it.
        # Only Hypercorn's shell needs it (see trio.asgi); the lean shell's send
        # has nothing that a cancelled app could cut half-way.
        app.asgi_app = shielded_send(app.asgi_app, seconds=settings.read_timeout)  # type: ignore[assignment, method-assign, arg-type]

    @app.while_serving
    async def lifespan() -> AsyncGenerator[None, None]:
        # The client lives exactly as long as serving does: opened before the
        # first request, closed (with its connections) after the last.
        # Cut calls' connections are drained in the app's serving nursery: a
        # nursery cannot be held open across this generator's yield.
        async with open_elasticsearch(
            connection_config(settings), "trio", transport=transport, drains=TrioDrains(app.nursery)
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
        # Drills look for this line: the last request has been answered and the pool is shut.
        log.info("closed the Elasticsearch client", extra=counters)

    return app
