"""Serving the asyncio build with Hypercorn's asyncio worker."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import httpx
from hypercorn.asyncio import tcp_server as hypercorn_shell
from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config
from hypercorn.utils import repr_socket_addr, wrap_app

from trio_books.api.service import draining_after
from trio_books.asyncio.app import create_app
from trio_books.gc_tuning import tune_gc_for_serving
from trio_books.http1_only import patch_hypercorn_shell
from trio_books.settings import Settings

APP_FACTORY = "trio_books.asyncio.app:create_app()"

Started = Callable[[list[str]], object]
"""What asyncio has instead of Trio's ``task_status``: called once with the bound addresses."""


async def wait_for_stop_signal() -> None:
    """Return at the first SIGINT or SIGTERM, so Hypercorn can shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    try:
        await stop.wait()
    finally:
        for number in signals:
            loop.remove_signal_handler(number)


async def serve_asyncio(
    settings: Settings,
    config: Config,
    *,
    stop_on_signals: bool = True,
    started: Started | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Serve the asyncio app until cancelled (or a stop signal); report the bound addresses.

    Args:
        started: called with the bound addresses once they accept connections,
            as ``task_status.started`` is in the Trio build.
        transport: passed to :func:`~trio_books.asyncio.app.create_app`.
    """
    app = create_app(settings, transport=transport)
    if settings.gc_tuning:
        tune_gc_for_serving()
    # Bind here rather than inside Hypercorn, so port 0 can be reported.
    sockets = config.create_sockets()
    binds = [
        f"http://{repr_socket_addr(sock.family, sock.getsockname())}"
        for sock in sockets.insecure_sockets
    ]

    async def shutdown_trigger() -> None:
        # Hypercorn awaits this only once every socket listens: the moment to report.
        if started is not None:
            started(binds)
        if stop_on_signals:
            await draining_after(wait_for_stop_signal, app.extensions)()
        else:
            await asyncio.Event().wait()  # until the serving task is cancelled

    # HTTP/1.1 only, as the Trio build's shells serve, when *config* offers no HTTP/2.
    patch_hypercorn_shell(hypercorn_shell)
    await worker_serve(
        wrap_app(app, config.wsgi_max_body_size, None),
        config,
        sockets=sockets,
        shutdown_trigger=shutdown_trigger,
    )
