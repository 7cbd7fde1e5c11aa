"""One benchmark run: catalogue, servers, warm-up, then interleaved rounds of wrk.

Order of measurement: for each round, for each concurrency, every target in
turn (A B C A B C ...), so whatever drifts on a shared machine (other work,
caches, thermal state) touches every target alike. Elasticsearch's request cache
for the index is emptied before each measurement: the builds send the same
bodies and share its entries, the peer and ``es-direct`` send others, so
without it a target's figures would depend on who ran before it (the first
build after ``es-direct`` cost Elasticsearch 1.6-1.9 times the CPU per search). Servers stay up for the
whole run; each measurement reads CPU time and peak memory of its process tree.
The ``-tls`` targets are served from a second, secured node (``--secure-es``)
holding the same catalogue. After the run, each server's last log line gives
the Elasticsearch connections its transport opened (see :func:`.processes.pool_counters`).
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from trio_books.bench import processes, wrk
from trio_books.bench.catalogue import ensure_bench_catalogue
from trio_books.bench.options import BenchOptions, secure_connection
from trio_books.bench.queries import Query, build_queries, sample_vocabulary
from trio_books.bench.targets import TARGETS
from trio_books.errors import TrioBooksError
from trio_books.es.connection import ConnectionConfig, plain_config
from trio_books.es.opening import open_elasticsearch
from trio_books.settings import load_settings

# The same footing for every target: the peer sheds nothing and logs no access
# lines, so the builds' admission gate and access log are set out of the way
# (their costs are measured by the hardening drills, not here).
SERVER_SETTINGS = {
    "TRIO_BOOKS_MAX_IN_FLIGHT": "10000",
    "TRIO_BOOKS_MAX_QUEUED": "100000",
    "TRIO_BOOKS_QUEUE_WAIT": "10",
    "TRIO_BOOKS_ACCESS_LOG": "false",
}

BRANCHES_PER_SEARCH = 4


@dataclass
class Endpoint:
    """Where wrk sends one target's load, and what it measures besides wrk's own figures.

    ``scripts`` has a wrk script per workload the target takes part in (``es-direct``
    has none for ``ping``: Elasticsearch has no such route to stand for).
    """

    name: str
    url: str
    scripts: dict[str, Path]
    depth: int
    server: processes.Server | None
    # The Elasticsearch it searches (whose CPU time each measurement reads).
    es: ConnectionConfig
    # Who may clear that Elasticsearch's request cache (the loader on the secured node).
    admin: ConnectionConfig
    # Searches wrk sent it, and its turns under load (wrk runs), warm-up included: what
    # its connection count is read against.
    searches: int = 0
    turns: int = 0


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


async def _prepare(
    config: ConnectionConfig, options: BenchOptions, loader: ConnectionConfig | None
) -> tuple[int, dict[str, list[Query]]]:
    """The catalogue's size, and each workload's seeded query list.

    With *loader* (the secured node, as its loader user), the catalogue is made
    there too: the same generator and size, so both nodes hold the same books.
    """
    count = await ensure_bench_catalogue(config, options.index, options.catalogue_size)
    if loader is not None:
        secured = await ensure_bench_catalogue(loader, options.index, options.catalogue_size)
        log(f"catalogue {options.index!r} on the secured node {loader.urls[0]}: {secured:,} books")
    sampling = config.replace(pool_size=2, max_connections=2, timeout=60.0)
    async with open_elasticsearch(sampling, "trio") as es:
        vocabulary = await sample_vocabulary(es, options.index, options.seed)
    queries = {
        workload: build_queries(
            vocabulary,
            workload,
            seed=options.seed,
            index=options.index,
            facet_size=load_settings().facet_size,
        )
        for workload in options.workloads
    }
    return count, queries


def es_cpu_ms(config: ConnectionConfig) -> float | None:
    """Elasticsearch's own CPU time (all nodes), from its node stats; None if it gave none."""
    return trio.run(_es_cpu_ms, config)


def clear_request_cache(config: ConnectionConfig, index: str) -> bool:
    """Empty Elasticsearch's request cache for *index*; False if it refused."""
    return trio.run(_clear_request_cache, config, index)


async def _clear_request_cache(config: ConnectionConfig, index: str) -> bool:
    try:
        async with open_elasticsearch(config, "trio", call_seconds=10) as es:
            await es.request("POST", f"/{index}/_cache/clear?request=true")
    except TrioBooksError:
        return False
    return True


async def _es_cpu_ms(config: ConnectionConfig) -> float | None:
    try:
        async with open_elasticsearch(config, "trio", call_seconds=10) as es:
            stats = await es.request("GET", "/_nodes/stats/process")
        return float(
            sum(node["process"]["cpu"]["total_in_millis"] for node in stats["nodes"].values())
        )
    except (TrioBooksError, KeyError, TypeError, ValueError):
        return None


def run_benchmark(options: BenchOptions, wrk_path: str, config: ConnectionConfig) -> dict[str, Any]:
    """Run everything *options* asks for over *config*; return the results (see :mod:`.report`)."""
    loader = reader = None
    if options.secure_es is not None and any(TARGETS[t].secure for t in options.targets):
        # The catalogue is loaded as the loader; the targets search as the reader.
        loader = secure_connection(options.secure_es, "loader")
        reader = secure_connection(options.secure_es, "reader")
    count, queries = trio.run(_prepare, config, options, loader)
    for workload, listed in queries.items():
        log(
            f"catalogue {options.index!r}: {count:,} books; {len(listed)} seeded {workload} queries"
        )
    first = next(iter(queries.values()))
    scripts = options.out / "wrk"
    runs: list[dict[str, Any]] = []
    otlp_sink: dict[str, int] = {}
    started = time.time()
    with ExitStack() as stack:
        upstream = config
        ports: list[int] = []
        if (latency_ms := options.upstream.latency_ms) is not None:  # the stand-in
            port = processes.free_port()
            ports.append(port)
            standin = processes.start_standin(
                port, latency_ms, options.out / "logs" / "latency-standin.log"
            )
            stack.callback(processes.stop_server, standin)
            # Not Elasticsearch: a plain loopback server of ours, given by its URL.
            upstream = plain_config([standin.url])
            log(
                f"upstream: latency stand-in ({options.upstream.label()}, NOT Elasticsearch) at {standin.url}"
            )
        node = upstream.nodes[0]
        traced: dict[str, str] = {}
        if any(TARGETS[name].traced for name in options.targets):
            port = processes.free_port(ports)
            ports.append(port)
            sink = processes.start_otlp_sink(port, options.out / "logs" / "otlp-sink.log")
            stack.callback(processes.stop_server, sink)

            def count_exports(sink: processes.Server = sink) -> None:
                otlp_sink.update(processes.otlp_sink_stats(sink))
                log(f"traces: the sink took {otlp_sink} from the traced targets")

            # Runs before the sink stops and after every server has (each flushes its
            # spans as it stops): what the sink counted is all that was exported.
            stack.callback(count_exports)
            traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url}
            log(f"traces: OTLP sink stand-in (counts exports, NOT a trace backend) at {sink.url}")
        endpoints: list[Endpoint] = []
        for name in options.targets:
            target = TARGETS[name]
            if target.module_args is None:
                if upstream.credentials is not None:
                    # wrk sends requests written out in its scripts: the secret would be on disk.
                    log(
                        f"{name}: left out: Elasticsearch needs credentials, and wrk's scripts would hold them"
                    )
                    continue
                direct: dict[str, Path] = {}
                host = node.host_header.decode()
                for workload, listed in queries.items():
                    batches = [
                        b"".join(
                            wrk.http_request(m, node.target(p).decode(), host, body)
                            for m, p, body in q.es_requests
                        )
                        for q in listed
                    ]
                    if all(batches):
                        direct[workload] = wrk.write_script(scripts, f"{name}-{workload}", batches)
                endpoints.append(
                    Endpoint(name, node.url, direct, BRANCHES_PER_SEARCH, None, upstream, upstream)
                )
                continue
            port = processes.free_port(ports)
            ports.append(port)
            es = reader if target.secure and reader is not None else upstream
            server = processes.start_server(
                name,
                target.command(port, options.workers),
                env={
                    "TRIO_BOOKS_INDEX": options.index,
                    **SERVER_SETTINGS,
                    **dict(target.env),
                    **(traced if target.traced else {}),
                },
                connection=es,
                url=f"http://127.0.0.1:{port}",
                ready_path=first[0].path,
                log=options.out / "logs" / f"{name}.log",
            )
            stack.callback(processes.stop_server, server)
            host = f"127.0.0.1:{port}"
            served = {
                workload: wrk.write_script(
                    scripts,
                    f"{name}-{workload}",
                    [wrk.http_request("GET", q.path, host) for q in listed],
                )
                for workload, listed in queries.items()
                if target.takes(workload)
            }
            admin = loader if target.secure and loader is not None else upstream
            endpoints.append(Endpoint(name, server.url, served, 1, server, es, admin))
        warm_connections = min(32, max(options.concurrency))
        for endpoint in endpoints:
            for workload, script in endpoint.scripts.items():
                if options.warmup > 0:
                    log(
                        f"warming up {endpoint.name} on {workload} "
                        f"({options.warmup:g} s, {warm_connections} clients)"
                    )
                    warm = wrk.run_wrk(
                        wrk_path,
                        endpoint.url,
                        script,
                        connections=warm_connections,
                        duration=options.warmup,
                        depth=endpoint.depth,
                    )
                    endpoint.searches += warm.searches
                    endpoint.turns += 1
        # Interleaved at every level: workloads, concurrencies and targets all take
        # turns within a round, so drift falls on every figure alike.
        for round_number in range(1, options.rounds + 1):
            for workload in options.workloads:
                for concurrency in options.concurrency:
                    for endpoint in endpoints:
                        if workload not in endpoint.scripts:
                            continue
                        record = measure(
                            options, wrk_path, endpoint, workload, concurrency, round_number
                        )
                        endpoint.searches += record["requests"]
                        endpoint.turns += 1
                        runs.append(record)
                        log(
                            f"round {round_number} {workload:<6} c={concurrency:<4} "
                            f"{endpoint.name:<15} {record['rps']:8.1f} req/s  "
                            f"p50 {record['p50_ms']} ms  p99 {record['p99_ms']} ms  "
                            f"errors {record['errors']}"
                        )
    return {
        "catalogue": {
            "index": options.index,
            "books": count,
            "queries": len(first),
            "seed": options.seed,
        },
        "runs": runs,
        # Read once the servers have stopped: each logs its counters as it closes its client.
        "connections": connections(options, endpoints),
        # What the traced targets exported, as the OTLP sink stand-in counted it.
        "otlp_sink": otlp_sink,
        "elapsed_s": round(time.time() - started, 1),
    }


def connections(options: BenchOptions, endpoints: list[Endpoint]) -> dict[str, dict[str, Any]]:
    """Per target whose transport counts them: connections opened and reused, per search.

    From the server's last log line (the project's transport only: httpx's stock
    transport and the official client log none). The count covers the whole run,
    so it also holds the pool's refills between turns: connections left idle past
    the keep-alive expiry while other targets had their turn, and exchanges cut
    short when wrk hung up at the end of a turn (both counted as discarded).
    """
    found: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        if endpoint.server is None:
            continue
        counters = processes.pool_counters(endpoint.server.log)
        if counters is None:
            continue
        thousands = max(endpoint.searches, 1) / 1000
        opened = counters["es_connections_opened"]
        # A turn under load may open at most one full pool (per worker) before its
        # connections are reused: any more were opened mid-turn, in the steady state.
        fills = endpoint.turns * endpoint.es.pool_size * options.workers
        found[endpoint.name] = {
            **counters,
            "searches": endpoint.searches,
            "turns": endpoint.turns,
            "pool_size": endpoint.es.pool_size,
            "opened_per_1k_searches": round(opened / thousands, 3),
            "opened_beyond_fills_per_1k_searches": round(max(0, opened - fills) / thousands, 3),
        }
    return found


def measure(
    options: BenchOptions,
    wrk_path: str,
    endpoint: Endpoint,
    workload: str,
    concurrency: int,
    round_number: int,
) -> dict[str, Any]:
    """One measurement of one target on one workload at one concurrency."""
    pids = endpoint.server.pids() if endpoint.server else []
    cleared = (
        None if options.upstream.is_standin else clear_request_cache(endpoint.admin, options.index)
    )
    if cleared is False:
        log(
            f"{endpoint.name}: Elasticsearch did not clear its request cache; its figures may owe it"
        )
    es_before = None if options.upstream.is_standin else es_cpu_ms(endpoint.es)
    cpu_before = processes.cpu_seconds(pids)
    with processes.PeakMemory(pids) as memory:
        result = wrk.run_wrk(
            wrk_path,
            endpoint.url,
            endpoint.scripts[workload],
            connections=concurrency,
            duration=options.duration,
            depth=endpoint.depth,
        )
    cpu = processes.cpu_seconds(pids) - cpu_before
    es_after = None if es_before is None else es_cpu_ms(endpoint.es)
    thousands = max(result.searches, 1) / 1000
    return {
        "target": endpoint.name,
        "workload": workload,
        "upstream": options.upstream.label(),
        "concurrency": concurrency,
        "round": round_number,
        "rps": round(result.searches / result.duration_s, 2),
        "p50_ms": _ms(result.p50_ms),
        "p90_ms": _ms(result.p90_ms),
        "p99_ms": _ms(result.p99_ms),
        "max_ms": round(result.max_ms, 3),
        "errors": result.errors,
        "cpu_s_per_1k": round(cpu / thousands, 4) if endpoint.server else None,
        "peak_rss_mb": round(memory.peak / 2**20, 1) if endpoint.server else None,
        "requests": result.searches,
        "duration_s": round(result.duration_s, 3),
        "es_cpu_s_per_1k": (
            None
            if es_before is None or es_after is None
            else round((es_after - es_before) / 1000 / thousands, 4)
        ),
        "es_request_cache_cleared": cleared,
        "loadgen_cpu_s_per_1k": round(result.loadgen_cpu_s / thousands, 4),
        "loadgen_cpu_share": round(result.loadgen_cpu_s / result.duration_s, 3),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
