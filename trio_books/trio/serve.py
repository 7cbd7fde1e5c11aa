"""Serving the Trio build: in this process, or as one worker process of several."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from functools import partial
from multiprocessing.synchronize import Event as EventType

import httpx
import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config, Sockets
from hypercorn.trio import run as hypercorn_run
from hypercorn.trio import tcp_server as hypercorn_shell
from hypercorn.utils import check_multiprocess_shutdown_event
from quart_trio import QuartTrio

from trio_books.api.metrics_listener import worker_metrics
from trio_books.api.service import draining_after
from trio_books.gc_tuning import tune_gc_for_serving
from trio_books.http1_only import patch_hypercorn_shell
from trio_books.logs import configure_logging
from trio_books.settings import Settings
from trio_books.trio.app import create_app
from trio_books.trio.hypercorn_shell import patch_hypercorn_run
from trio_books.trio.server import serve_lean


async def wait_for_stop_signal() -> None:
    """Return at the first SIGINT or SIGTERM, so Hypercorn can shut down gracefully."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


async def serve_trio(
    settings: Settings,
    config: Config,
    *,
    stop_on_signals: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the Trio app until cancelled (or a stop signal); report the bound addresses.

    Start it with ``binds = await nursery.start(serve_trio, settings, config)``.

    Args:
        transport: passed to :func:`~trio_books.trio.app.create_app`.
    """
    app = create_app(settings, transport=transport)
    if settings.gc_tuning:
        tune_gc_for_serving()
    trigger = wait_for_stop_signal if stop_on_signals else None
    await serve_app(app, settings, config, shutdown_trigger=trigger, task_status=task_status)


async def serve_app(
    app: QuartTrio,
    settings: Settings,
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    sockets: Sockets | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* on the connection shell ``settings.server_shell`` names; report the binds.

    *app* must come from :func:`~trio_books.trio.app.create_app` with the same
    *settings*: the app is built for its shell (see :mod:`trio_books.trio.asgi`).
    Every way of serving passes here, so at *shutdown_trigger* the app is
    marked draining (``/readyz`` 503) before the shell stops taking requests.

    Args:
        sockets: bound and listening (a worker's, bound by its parent); by
            default the shell binds ``config.bind`` itself.
    """
    if shutdown_trigger is not None:
        shutdown_trigger = draining_after(shutdown_trigger, app.extensions)
    if settings.server_shell == "hypercorn":
        # HTTP/1.1 only, as the lean shell serves, when *config* offers no HTTP/2.
        patch_hypercorn_shell(hypercorn_shell)
        # Hypercorn's shell with its shutdown race closed (see hypercorn_shell).
        patch_hypercorn_run(hypercorn_run)
        await hypercorn_run.worker_serve(
            ASGIWrapper(app),
            config,
            sockets=sockets,
            shutdown_trigger=shutdown_trigger,
            task_status=task_status,
        )
        return
    await serve_lean(
        ASGIWrapper(app),
        config,
        sockets=sockets,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
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
    :func:`serve_app`, as a single process does.

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
    if sockets is not None:
        # The parent only binds; each worker listens once it is about to serve
        # (in the asyncio build, asyncio.start_server does).
        for sock in [*sockets.secure_sockets, *sockets.insecure_sockets]:
            sock.listen(config.backlog)
    app = create_app(settings)
    trigger = None
    if shutdown_event is not None:
        trigger = partial(check_multiprocess_shutdown_event, shutdown_event, trio.sleep)
    trio.run(partial(serve_app, app, settings, config, shutdown_trigger=trigger, sockets=sockets))
