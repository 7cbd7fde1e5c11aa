"""Serving the Trio build with Hypercorn's trio worker."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import httpx
import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.trio import tcp_server as hypercorn_shell
from quart_trio import QuartTrio

from trio_books.api.service import draining_after
from trio_books.gc_tuning import tune_gc_for_serving
from trio_books.http1_only import patch_hypercorn_shell
from trio_books.logs import configure_logging
from trio_books.settings import Settings, load_settings
from trio_books.trio.app import create_app
from trio_books.trio.server import serve_lean

# What each of several worker processes loads (``--workers N``).
APP_FACTORY = "trio_books.trio.serve:worker_app()"


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
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* on the connection shell ``settings.server_shell`` names; report the binds.

    *app* must come from :func:`~trio_books.trio.app.create_app` with the same
    *settings*: the app is built for its shell (see :mod:`trio_books.trio.asgi`).
    """
    if shutdown_trigger is not None:
        shutdown_trigger = draining_after(shutdown_trigger, app.extensions)
    if settings.server_shell == "hypercorn":
        # HTTP/1.1 only, as the lean shell serves, when *config* offers no HTTP/2.
        patch_hypercorn_shell(hypercorn_shell)
        await serve(app, config, shutdown_trigger=shutdown_trigger, task_status=task_status)
        return
    await serve_lean(
        ASGIWrapper(app),
        config,
        shutdown_trigger=shutdown_trigger,
        task_status=task_status,
    )


def worker_app() -> QuartTrio:
    """The app of one worker process among several, which Hypercorn's parent process manages.

    The parent turns SIGINT and SIGTERM into a shutdown event each worker
    polls, then waits for the workers; Hypercorn already makes workers ignore
    SIGINT for that reason, and this makes them ignore SIGTERM as well, so a
    signal sent to the whole process group (systemd's default) still ends in
    a graceful shutdown rather than in workers dying mid-request.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
