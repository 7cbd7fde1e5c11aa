"""Serving the asyncio build: in this process, or as one worker process of several."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from multiprocessing.synchronize import Event as EventType

import httpx
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio import run as hypercorn_run
from hypercorn.asyncio import tcp_server as hypercorn_shell
from hypercorn.config import Config, Sockets
from hypercorn.utils import check_multiprocess_shutdown_event, repr_socket_addr
from quart import Quart

from trio_books.api.metrics_listener import worker_metrics
from trio_books.api.service import draining_after
from trio_books.asyncio.app import create_app
from trio_books.asyncio.hypercorn_shell import patch_hypercorn_run
from trio_books.gc_tuning import tune_gc_for_serving
from trio_books.http1_only import patch_hypercorn_shell
from trio_books.logs import configure_logging
from trio_books.settings import Settings

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
    trigger = wait_for_stop_signal if stop_on_signals else None
    await serve_app(app, config, shutdown_trigger=trigger, started=started)


async def serve_app(
    app: Quart,
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    sockets: Sockets | None = None,
    started: Started | None = None,
) -> None:
    """Serve *app* on Hypercorn's asyncio shell until *shutdown_trigger* returns (or cancelled).

    The twin of the Trio build's ``serve_app``, with one shell to choose
    from. Every way of serving passes here, so at *shutdown_trigger* the app
    is marked draining (``/readyz`` 503) before the shell stops taking requests.

    Args:
        sockets: a worker's, from its parent; by default ``config.bind``'s.
        started: called with the bound addresses once they accept connections.
    """
    if shutdown_trigger is not None:
        shutdown_trigger = draining_after(shutdown_trigger, app.extensions)
    # Bind here rather than inside Hypercorn, so port 0 can be reported.
    if sockets is None:
        sockets = config.create_sockets()
    binds = [
        f"http://{repr_socket_addr(sock.family, sock.getsockname())}"
        for sock in sockets.insecure_sockets
    ]

    async def trigger() -> None:
        # Hypercorn awaits this only once every socket listens: the moment to report.
        if started is not None:
            started(binds)
        if shutdown_trigger is not None:
            await shutdown_trigger()
        else:
            await asyncio.Event().wait()  # until the serving task is cancelled

    # HTTP/1.1 only, as the Trio build's shells serve, when *config* offers no HTTP/2.
    patch_hypercorn_shell(hypercorn_shell)
    # Hypercorn's shell with its shutdown race closed (see hypercorn_shell).
    patch_hypercorn_run(hypercorn_run)
    await hypercorn_run.worker_serve(
        ASGIWrapper(app), config, sockets=sockets, shutdown_trigger=trigger
    )


def serve_worker(
    settings: Settings,
    config: Config,
    sockets: Sockets | None = None,
    shutdown_event: EventType | None = None,
    index: int = 0,
) -> None:
    """One worker process of several (``serve --workers N``), as :func:`~trio_books.workers.run_workers` starts it.

    Hypercorn's own worker would load the app by name and stop at
    *shutdown_event* without marking it draining; this one serves through
    :func:`serve_app`, as a single process does, on the event loop
    ``config.worker_class`` names (``asyncio`` or ``uvloop``).

    The parent turns SIGINT and SIGTERM into *shutdown_event*, which each
    worker polls, then waits for the workers; workers inherit SIGINT ignored
    for that reason, and this makes them ignore SIGTERM as well, so a signal
    sent to the whole process group (systemd's default) still ends in a
    graceful shutdown rather than in workers dying mid-request.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(settings)
    # Worker *index* (0 to N-1) serves its own metrics, on METRICS_PORT + index.
    settings, sockets = worker_metrics(settings, config, sockets, index)
    loop_factory = None
    if config.worker_class == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    app = create_app(settings)
    trigger = None
    if shutdown_event is not None:
        trigger = partial(check_multiprocess_shutdown_event, shutdown_event, asyncio.sleep)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve_app(app, config, shutdown_trigger=trigger, sockets=sockets))
