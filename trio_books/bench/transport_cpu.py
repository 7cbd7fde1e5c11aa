"""CPU microseconds per Elasticsearch call on the client side: stock httpx against trio_books'.

Runs *concurrency* tasks that each make calls through one shared
``httpx.AsyncClient`` to a real Elasticsearch (a small ``_search``), and divides
this process's CPU time by the number of calls: Elasticsearch's own work is in
another process, so what is left is httpx plus the transport (plus Trio).
With ``--profile`` the run is recorded by pyinstrument.

    python -m trio_books.bench.transport_cpu --es http://127.0.0.1:9200 --calls 20000 --concurrency 64

``--es`` defaults to the first of ``TRIO_BOOKS_ES_URLS``; TLS and credentials
come from the ``TRIO_BOOKS_ES_*`` settings either way. With ``--secure-es PORT``
(a node of ``es start --secure``), ``trio_books`` and ``stock`` also run against
that node over https, with its CA and the reader's credentials, and the last
lines set each one's CPU per call over TLS beside plaintext:

    python -m trio_books.bench.transport_cpu --es http://127.0.0.1:9200 --secure-es 9201
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
import trio

from trio_books.bench.options import connection_from, secure_connection
from trio_books.es.connection import ConnectionConfig
from trio_books.es.opening import open_elasticsearch, own_transport

BODY = {"size": 1, "query": {"match_all": {}}}
# httpx's stock transport; httpx's pools, sharded; ours under httpx's objects; ours below them.
NAMES = ("stock", "sharded", "trio_books/httpx", "trio_books")
# Measured over TLS too, given a secured node.
TLS_NAMES = ("stock", "trio_books")


async def run(
    config: ConnectionConfig, transport_name: str, calls: int, concurrency: int, label: str = ""
) -> float:
    # "stock": one httpcore pool, as httpx ships; "sharded": several httpcore pools in turn.
    kind = transport_name if transport_name in ("stock", "sharded") else "trio_books"
    config = config.replace(
        transport=kind, pool_size=concurrency, max_connections=concurrency, timeout=30.0
    )
    # "trio_books": the app's own wiring, our transport also taking calls below httpx's
    # objects; "trio_books/httpx": the same transport, given, so every call goes through httpx.
    transport: httpx.AsyncBaseTransport | None = None
    if transport_name == "trio_books/httpx":
        transport = own_transport(config, "trio")
    async with open_elasticsearch(
        config, "trio", transport=transport, below_httpx=transport is None
    ) as es:
        await es.search("_all", BODY)
        left = calls

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await es.search("_all", BODY)

        cpu, wall = time.process_time(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(
        f"{transport_name + label:<21} {calls} calls, {concurrency} concurrent: "
        f"{cpu / calls * 1e6:.0f} CPU µs per call, {calls / wall:.0f} calls/s"
    )
    return cpu / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--es", help="an Elasticsearch URL (default: TRIO_BOOKS_ES_URLS)")
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", choices=NAMES)
    parser.add_argument(
        "--secure-es",
        type=int,
        metavar="PORT",
        help="also measure over TLS against this local secured node (es start --secure)",
    )
    args = parser.parse_args()
    config = connection_from(args.es)
    config = config.replace(nodes=config.nodes[:1])
    secured = None if args.secure_es is None else secure_connection(args.secure_es, "reader")
    if args.profile:
        from pyinstrument import Profiler  # type: ignore[import-not-found]

        with Profiler(async_mode="disabled") as profiler:
            trio.run(run, secured or config, args.profile, args.calls, args.concurrency)
        profiler.print(short_mode=True, show_all=False, color=False)
        return
    plain: dict[str, list[float]] = {name: [] for name in NAMES}
    tls: dict[str, list[float]] = {name: [] for name in TLS_NAMES}
    # Plaintext and TLS take turns within each round, so drift touches both alike.
    for _ in range(args.rounds):
        for name in NAMES:
            plain[name].append(trio.run(run, config, name, args.calls, args.concurrency))
            if secured is not None and name in tls:
                tls[name].append(
                    trio.run(run, secured, name, args.calls, args.concurrency, " (TLS)")
                )
    if secured is not None:
        for name in TLS_NAMES:
            clear, secret = statistics.median(plain[name]), statistics.median(tls[name])
            print(
                f"{name:<17} median CPU µs per call: plaintext {clear * 1e6:.0f}, "
                f"TLS {secret * 1e6:.0f} ({secret / clear:.2f}×)"
            )


if __name__ == "__main__":
    main()
