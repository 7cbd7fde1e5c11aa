"""Serving the Trio build with Hypercorn's trio worker."""

from __future__ import annotations

import signal

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from trio_books.gc_tuning import tune_gc_for_serving
from trio_books.settings import Settings
from trio_books.trio.app import create_app

APP_FACTORY = "trio_books.trio.app:create_app()"


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
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the Trio app until cancelled (or a stop signal); report the bound addresses.

    Start it with ``binds = await nursery.start(serve_trio, settings, config)``.
    """
    app = create_app(settings)
    if settings.gc_tuning:
        tune_gc_for_serving()
    await serve(
        app,
        config,
        shutdown_trigger=wait_for_stop_signal if stop_on_signals else None,
        task_status=task_status,
    )
