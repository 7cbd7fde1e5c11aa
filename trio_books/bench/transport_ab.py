"""A/B of the Elasticsearch transport: stock httpx against trio_books', with wrk, in one run.

Serves the Trio build with Hypercorn (one worker) once per transport, loads the
test catalogue into its own index, and runs wrk on two workloads (``ping``:
``GET /``; ``facets``: a filtered search, four Elasticsearch calls) at each
concurrency, the transports interleaved round by round so that background load
on the machine falls on both alike. Loopback only; every run is bounded.

    python -m trio_books.bench.transport_ab --es http://127.0.0.1:9200 --seconds 8 --rounds 2

``--es`` defaults to ``TRIO_BOOKS_ES_URLS``; TLS and credentials come from the
``TRIO_BOOKS_ES_*`` settings either way, and the servers get the same.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import httpx
import trio

from trio_books.bench.options import connection_from
from trio_books.es.connection import ConnectionConfig, plain_config
from trio_books.es.environment import child_env

WORKLOADS = {"ping": "/", "facets": "/api/v1/search/?tags=fiction&year_from=1800"}
INDEX = "transport-ab-books"


async def load_catalogue(config: ConnectionConfig) -> bytes:
    """Load the test catalogue; return one answer holding the facet search's hits and aggregations."""
    from urllib.parse import parse_qsl, urlsplit

    import orjson

    from trio_books.core.bulk import bulk_body
    from trio_books.core.mapping import index_body
    from trio_books.core.query import SearchQuery, search_requests
    from trio_books.core.synthetic import synthetic_books
    from trio_books.es.opening import open_elasticsearch

    config = config.replace(pool_size=2, max_connections=2, timeout=30.0)
    async with open_elasticsearch(config, "trio") as es:
        await es.delete_index(INDEX)
        await es.create_index(INDEX, index_body())
        await es.bulk(bulk_body(INDEX, synthetic_books(2_000)), refresh=True)
        params = dict(parse_qsl(urlsplit(WORKLOADS["facets"]).query))
        merged: dict[str, object] = {"aggregations": {}}
        for body in search_requests(SearchQuery.model_validate(params), 20).values():
            answer = await es.search(INDEX, body)
            merged["aggregations"].update(answer.pop("aggregations", {}))  # type: ignore[attr-defined]
            merged = {**answer, **merged} if "hits" not in merged else merged
    return orjson.dumps(merged)


def wrk(url: str, clients: int, seconds: int) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, non-2xx or socket errors) of one bounded wrk run."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", "5s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = sum(
        int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|errors: .*?): (\d+)", out)
    )
    return rps, ms("50"), ms("99"), errors


def serve(transport: str, config: ConnectionConfig, port: int) -> subprocess.Popen[bytes]:
    """Serve the app on *port* over *config* with the chosen transport."""
    env = child_env(config, os.environ)
    env |= {
        "TRIO_BOOKS_INDEX": INDEX,
        "TRIO_BOOKS_ES_TRANSPORT": transport.partition("+")[0],
        # "trio_books+nogc": the same without the GC tuning of serving.
        "TRIO_BOOKS_GC_TUNING": "false" if transport.endswith("+nogc") else "true",
        "TRIO_BOOKS_SEARCH_DEADLINE": "5",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "trio_books", "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


def rate(
    results: dict[tuple[str, str, int], list[tuple[float, float, float, int]]],
    transport: str,
    workload: str,
    clients: int,
) -> float:
    return median(r[0] for r in results[transport, workload, clients])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--es", help="Elasticsearch URLs (default: TRIO_BOOKS_ES_URLS)")
    parser.add_argument("--port", type=int, default=5811)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", default="8,64")
    parser.add_argument("--transports", default="stock,trio_books")
    parser.add_argument(
        "--standin",
        action="store_true",
        help="serve over a stand-in upstream answering at once (trio_books.bench.instant_standin) instead of "
        "Elasticsearch, to measure the client alone",
    )
    args = parser.parse_args()
    config = connection_from(args.es)
    answer = trio.run(load_catalogue, config.replace(nodes=config.nodes[:1]))
    standin = None
    if args.standin:
        answer_file = Path("/tmp/trio-books-standin-answer.json")
        answer_file.write_bytes(answer)
        standin = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trio_books.bench.instant_standin",
                "--answer",
                str(answer_file),
                "--port",
                "5190",
            ]
        )
        time.sleep(1)
        # Not Elasticsearch: the stand-in of ours, on loopback, given by its URL.
        config = plain_config(["http://127.0.0.1:5190"])
    try:
        run_rounds(args, config)
    finally:
        if standin is not None:
            standin.terminate()
            standin.wait(5)


def run_rounds(args: argparse.Namespace, config: ConnectionConfig) -> None:
    clients = [int(c) for c in args.clients.split(",")]
    transports = args.transports.split(",")
    results: dict[tuple[str, str, int], list[tuple[float, float, float, int]]] = {}
    for round_ in range(args.rounds):
        for transport in transports if round_ % 2 == 0 else reversed(transports):
            server = serve(transport, config, args.port)
            try:
                wrk(f"http://127.0.0.1:{args.port}{WORKLOADS['facets']}", 16, 2)  # warm-up
                for workload, path in WORKLOADS.items():
                    for c in clients:
                        figures = wrk(f"http://127.0.0.1:{args.port}{path}", c, args.seconds)
                        results.setdefault((transport, workload, c), []).append(figures)
                        print(round_, transport, workload, c, figures, flush=True)
            finally:
                server.terminate()
                server.wait(10)
    print("\ntransport   workload  clients   rps (median)   p50 ms   p99 ms  errors")
    for (transport, workload, c), runs in sorted(results.items()):
        print(
            f"{transport:<11} {workload:<8} {c:>7} {median(r[0] for r in runs):>14.0f}"
            f" {median(r[1] for r in runs):>8.1f} {median(r[2] for r in runs):>8.1f}"
            f" {sum(r[3] for r in runs):>7}"
        )
    low, high = min(clients), max(clients)
    for transport in transports:
        ratio = rate(results, transport, "facets", high) / rate(results, transport, "facets", low)
        ping = rate(results, transport, "ping", high) / rate(results, transport, "ping", low)
        print(
            f"{transport}: facets rps({high})/rps({low}) = {ratio:.2f}; ping's = {ping:.2f}; "
            f"ratio of ratios = {ratio / ping:.2f}"
        )


if __name__ == "__main__":
    main()
