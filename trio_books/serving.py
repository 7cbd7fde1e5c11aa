"""``python -m trio_books serve``: run the API with Hypercorn."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import socket
import sys
from collections.abc import Callable
from functools import partial

import trio
from hypercorn.config import Config

from trio_books.api.metrics_listener import metrics_bind
from trio_books.api.service import SearchService
from trio_books.errors import TrioBooksError, UsageError
from trio_books.es.connection import connection_config
from trio_books.es.demo import DEMO_BOOKS, ensure_demo_catalogue
from trio_books.es.opening import open_elasticsearch
from trio_books.logs import configure_logging
from trio_books.settings import Settings, invalid_settings, load_settings
from trio_books.trio.fanout import CONCURRENCY
from trio_books.workers import run_workers

BUILDS = ("trio", "asyncio")
LOOPS = ("asyncio", "uvloop")
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
        "--loop",
        choices=LOOPS,
        help="the asyncio build's event loop (default asyncio; uvloop needs the uvloop extra)",
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


def hypercorn_config(
    settings: Settings, *, host: str, port: int, workers: int = 1, worker_class: str = "trio"
) -> Config:
    """Hypercorn's configuration: ``worker_class`` is ``trio``, ``asyncio`` or ``uvloop``."""
    config = Config()
    config.bind = [metrics_bind(host, port)]
    if settings.metrics and settings.metrics_port is not None and workers == 1:
        # One process: the metrics port is a second listener of the same server.
        # Several: each worker binds its own (api.metrics_listener.worker_metrics).
        config.bind.append(metrics_bind(host, settings.metrics_port))
    config.worker_class = worker_class
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
    # The API is HTTP/1.1: TLS offers nothing else, and with this Hypercorn's
    # shells refuse cleartext HTTP/2 too (see trio_books.http1_only).
    config.alpn_protocols = ["http/1.1"]
    return config


def settings_from(args: argparse.Namespace) -> Settings:
    try:
        settings = load_settings()
    except ValueError as error:
        raise invalid_settings(error) from None
    return settings


def is_loopback(host: str) -> bool:
    """Whether *host* (an address or ``localhost``) is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.loop is not None and args.build != "asyncio":
        raise UsageError("--loop applies to the asyncio build only")
    loop = args.loop or "asyncio"
    if loop == "uvloop":
        _require_uvloop()
    settings = settings_from(args)
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0-65535, not {port}")
    if settings.metrics and settings.metrics_port is not None:
        metrics_ports = range(settings.metrics_port, settings.metrics_port + args.workers)
        if port in metrics_ports or metrics_ports.stop - 1 > 65535:
            raise UsageError(
                f"TRIO_BOOKS_METRICS_PORT: {args.workers} worker(s) serve metrics on ports "
                f"{metrics_ports.start}-{metrics_ports.stop - 1}, which must be ≤ 65535 and "
                f"leave out the public port {port}"
            )
    if args.ensure_index or args.demo_catalogue:
        trio.run(_prepare_index, settings, args.demo_catalogue)
    worker_class = "trio" if args.build == "trio" else loop
    config = hypercorn_config(
        settings, host=host, port=port, workers=args.workers, worker_class=worker_class
    )
    check_binds(config)
    if settings.metrics and settings.metrics_port is not None and args.workers > 1:
        # Each worker binds its own metrics port: checked here too, for one clear line.
        ports = Config()
        ports.bind = [metrics_bind(host, settings.metrics_port + i) for i in range(args.workers)]
        check_binds(ports)
    configure_logging(settings)
    if settings.preset == "development" and not is_loopback(host):
        log.warning(
            "serving on %s in the development preset: /docs and ?trace=1 are open to anyone "
            "who reaches it; set TRIO_BOOKS_PRESET=production for a deployment",
            host,
        )
    log.info(
        "starting trio_books (%s build), binding %s:%s",
        args.build,
        host,
        port,
        extra={"preset": settings.preset, "workers": args.workers},
    )
    label = f"{args.build} build" + (", uvloop" if loop == "uvloop" else "")
    if args.workers == 1:
        # One process: serve in this one, and announce the address once it is
        # bound (so ``--port 0`` tells which port it got).
        announce = partial(_announce, label)
        if args.build == "trio":
            trio.run(_serve_trio, settings, config, announce)
        else:
            _serve_asyncio(settings, config, announce, uvloop=loop == "uvloop")
        return 0
    # Each worker process serves its build's app as one process does, with these settings.
    if args.build == "trio":
        from trio_books.trio.serve import serve_worker
    else:
        from trio_books.asyncio.serve import serve_worker
    # Announced once bound, as with one process (so ``--port 0`` tells which port it got).
    announce = partial(_announce, f"{label}, {args.workers} workers")
    return run_workers(config, partial(serve_worker, settings), started=announce)


def check_binds(config: Config) -> None:
    """Fail with one line, before any worker starts, if an address cannot be listened on.

    Each ``host:port`` of ``config.bind`` is bound as Hypercorn will bind it
    (``SO_REUSEADDR``), then let go.

    Raises:
        UsageError: a port in use, one only root may take, a host not on this machine.
    """
    for bind in config.bind:
        host, _, port = bind.rpartition(":")
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host.strip("[]"), int(port), type=socket.SOCK_STREAM
            )[0]
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except OSError as error:
            reason = error.strerror or str(error)
            raise UsageError(
                f"cannot listen on {bind}: {reason} (choose another --port, or stop what holds it)"
            ) from None


def _announce(label: str, binds: list[str]) -> None:
    print(f"trio_books ({label}) serving on {', '.join(binds)}", file=sys.stderr, flush=True)


async def _serve_trio(
    settings: Settings, config: Config, announce: Callable[[list[str]], None]
) -> None:
    from trio_books.trio.serve import serve_trio

    async with trio.open_nursery() as nursery:
        announce(await nursery.start(serve_trio, settings, config))


def _serve_asyncio(
    settings: Settings, config: Config, announce: Callable[[list[str]], None], *, uvloop: bool
) -> None:
    import asyncio

    from trio_books.asyncio.serve import serve_asyncio

    loop_factory = None
    if uvloop:
        import uvloop as uvloop_module

        loop_factory = uvloop_module.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve_asyncio(settings, config, started=announce))


def _require_uvloop() -> None:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        raise UsageError("--loop uvloop needs uvloop: pip install 'trio_books[uvloop]'") from None


async def _prepare_index(settings: Settings, demo_catalogue: bool) -> None:
    """Create the index, or load the demo catalogue, before serving."""
    # A short-lived client of its own, before the server's: two connections do.
    config = connection_config(settings).replace(
        pool_size=2, max_connections=2, timeout=max(settings.es_timeout, 30.0)
    )
    async with open_elasticsearch(config, "trio") as es:
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
