"""``python -m trio_books serve``: run the API with Hypercorn."""

from __future__ import annotations

import argparse
import logging
import math
import sys

import trio
from hypercorn.config import Config
from hypercorn.run import run as run_workers

from trio_books.errors import TrioBooksError, UsageError
from trio_books.logs import configure_logging
from trio_books.settings import Settings, load_settings

BUILDS = ("trio",)
# Room for the request line and header framing above the app's own caps, so a
# head just past them still reaches the app and gets a JSON answer.
HEAD_SLACK = 1024

log = logging.getLogger("trio_books.serving")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the search API",
        description="Serve the search API with Hypercorn. Defaults come from TRIO_BOOKS_* settings.",
    )
    serve.add_argument("--host", help="address to listen on (default: TRIO_BOOKS_HOST, 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port to listen on (default: TRIO_BOOKS_PORT, 5000)"
    )
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--build", choices=BUILDS, default="trio", help="which build to serve (default trio)"
    )
    serve.add_argument(
        "--ensure-index",
        action="store_true",
        help="create the index with the book mapping first, if it does not exist",
    )
    serve.set_defaults(handler=run)


def hypercorn_config(settings: Settings, *, host: str, port: int, workers: int = 1) -> Config:
    """Hypercorn's configuration for the trio worker, its limits and timeouts from *settings*."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.worker_class = "trio"
    config.workers = workers
    # The app writes its own access lines (with the request id); Hypercorn's
    # errors go through the root logger, so they are JSON too.
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    # A connection still sending its request head, or idle between requests,
    # is closed after this: it cuts off clients that send a byte at a time.
    config.keep_alive_timeout = settings.keep_alive_timeout
    config.read_timeout = math.ceil(settings.read_timeout)
    config.graceful_timeout = settings.graceful_timeout
    config.backlog = settings.backlog
    config.h11_max_incomplete_size = (
        settings.max_url_length + settings.max_header_bytes + HEAD_SLACK
    )
    return config


def settings_from(args: argparse.Namespace) -> Settings:
    try:
        settings = load_settings()
    except ValueError as error:
        raise UsageError(f"invalid settings: {str(error).splitlines()[0]}") from None
    return settings


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    settings = settings_from(args)
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0-65535, not {port}")
    if args.ensure_index:
        trio.run(_ensure_index, settings)
    config = hypercorn_config(settings, host=host, port=port, workers=args.workers)
    configure_logging(settings)
    log.info(
        "trio_books (%s build) serving on http://%s:%s",
        args.build,
        host,
        port,
        extra={"preset": settings.preset, "workers": args.workers},
    )
    if args.workers == 1:
        from trio_books.trio.serve import serve_trio

        trio.run(serve_trio, settings, config)
        return 0
    from trio_books.trio.serve import APP_FACTORY

    config.application_path = APP_FACTORY
    return run_workers(config)


async def _ensure_index(settings: Settings) -> None:
    from trio_books.api.service import SearchService
    from trio_books.es.client import Elasticsearch, open_http_client
    from trio_books.trio.fanout import CONCURRENCY

    async with open_http_client(timeout=settings.es_timeout, max_connections=2) as http:
        service = SearchService(Elasticsearch(http, settings.es_urls), settings, CONCURRENCY)
        try:
            created = await service.ensure_index()
        except TrioBooksError as error:
            raise UsageError(
                f"cannot prepare the index {settings.index!r}: {error.message}"
            ) from None
    if created:
        print(f"created the index {settings.index!r}", file=sys.stderr)
