"""``python -m trio_books serve``: run the API with Hypercorn."""

from __future__ import annotations

import argparse
import sys

import trio
from hypercorn.config import Config
from hypercorn.run import run as run_workers

from trio_books.api.service import SearchService
from trio_books.errors import TrioBooksError, UsageError
from trio_books.es.client import Elasticsearch, open_http_client
from trio_books.es.demo import DEMO_BOOKS, ensure_demo_catalogue
from trio_books.settings import Settings, load_settings
from trio_books.trio.fanout import CONCURRENCY

BUILDS = ("trio",)


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
    prepare = serve.add_mutually_exclusive_group()
    prepare.add_argument(
        "--ensure-index",
        action="store_true",
        help="create the index with the book mapping first, if it does not exist",
    )
    prepare.add_argument(
        "--demo-catalogue",
        action="store_true",
        help=f"first load a generated catalogue of {DEMO_BOOKS:,} books if the index has no books",
    )
    serve.set_defaults(handler=run)


def hypercorn_config(settings: Settings, *, host: str, port: int, workers: int = 1) -> Config:
    """Hypercorn's configuration for the trio worker."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.worker_class = "trio"
    config.workers = workers
    config.accesslog = None
    config.errorlog = "-"
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
    if args.ensure_index or args.demo_catalogue:
        trio.run(_prepare_index, settings, args.demo_catalogue)
    config = hypercorn_config(settings, host=host, port=port, workers=args.workers)
    print(
        f"trio_books ({args.build} build) serving on http://{host}:{port}",
        file=sys.stderr,
        flush=True,
    )
    if args.workers == 1:
        from trio_books.trio.serve import serve_trio

        trio.run(serve_trio, settings, config)
        return 0
    from trio_books.trio.serve import APP_FACTORY

    config.application_path = APP_FACTORY
    return run_workers(config)


async def _prepare_index(settings: Settings, demo_catalogue: bool) -> None:
    """Create the index, or load the demo catalogue, before serving."""
    async with open_http_client(timeout=max(settings.es_timeout, 30.0), max_connections=2) as http:
        es = Elasticsearch(http, settings.es_urls)
        try:
            if demo_catalogue:
                loaded = await ensure_demo_catalogue(es, settings.index)
                if loaded:
                    print(
                        f"loaded a demo catalogue of {loaded:,} books into {settings.index!r}",
                        file=sys.stderr,
                    )
            elif await SearchService(es, settings, CONCURRENCY).ensure_index():
                print(f"created the index {settings.index!r}", file=sys.stderr)
        except TrioBooksError as error:
            raise UsageError(
                f"cannot prepare the index {settings.index!r}: {error.message}"
            ) from None
