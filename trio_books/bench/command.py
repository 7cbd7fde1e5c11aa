"""``python -m trio_books bench``: measure the builds and their peers (see :mod:`trio_books.bench`)."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path

import trio

from trio_books.bench.options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_TARGETS,
    WORKLOADS,
    BenchOptions,
    check,
    parse_concurrency,
    parse_targets,
    parse_upstream,
    parse_workloads,
)
from trio_books.bench.targets import TARGETS
from trio_books.errors import TrioBooksError, UsageError
from trio_books.es.connection import ConnectionConfig, connection_config
from trio_books.es.opening import open_elasticsearch
from trio_books.settings import invalid_settings, load_settings

QUICK = {
    "targets": "trio,asyncio,es-direct",
    "concurrency": "1,8",
    "duration": 1.0,
    "rounds": 2,
    "warmup": 1.0,
    "index": "bench-synthetic-quick",
    "catalogue_size": 2_000,
}


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench",
        help="benchmark the Trio build against the asyncio build and their peers",
        description=(
            "Serve each target as its own process on loopback against the same Elasticsearch "
            "and index, load it with wrk in interleaved rounds, and write results.json, "
            "report.md and plots. Needs the bench extra and wrk."
        ),
    )
    bench.add_argument("--targets", help=f"comma-separated (default {DEFAULT_TARGETS})")
    bench.add_argument("--concurrency", help=f"client counts (default {DEFAULT_CONCURRENCY})")
    bench.add_argument("--duration", type=float, help="seconds per measurement (default 15)")
    bench.add_argument("--workers", type=int, default=1, help="processes per server (default 1)")
    bench.add_argument(
        "--workload",
        default="search",
        help=f"comma-separated, measured interleaved in one run: {', '.join(WORKLOADS)} "
        "(ping: the bare GET / route; default %(default)s)",
    )
    bench.add_argument(
        "--upstream",
        default="real",
        help="'real' Elasticsearch, or 'latency:<N>ms' for the latency stand-in (default real)",
    )
    bench.add_argument("--out", type=Path, help="output folder (default bench-results/<time>)")
    bench.add_argument("--rounds", type=int, help="interleaved rounds, at least 3 (default 3)")
    bench.add_argument("--warmup", type=float, help="seconds of warm-up per target (default 5)")
    bench.add_argument("--index", help="the catalogue's index (default bench-synthetic)")
    bench.add_argument("--catalogue-size", type=int, help="books, at least 100,000 (default)")
    bench.add_argument("--seed", type=int, default=7, help="seed of the query list (default 7)")
    bench.add_argument(
        "--secure-es",
        type=int,
        metavar="PORT",
        help="a local secured node (es start --secure --port PORT) for the trio-tls and "
        "fastapi-tls targets: the catalogue is loaded there as its loader user, and the "
        "targets search it as its reader, over https with its CA",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="a short run to check the harness (fewer rounds, small catalogue): not for figures",
    )
    bench.set_defaults(handler=run)


def options_from(args: argparse.Namespace) -> BenchOptions:
    quick = dict(QUICK) if args.quick else {}

    def pick(name: str, default: object) -> object:
        value = getattr(args, name)
        return value if value is not None else quick.get(name, default)

    out = args.out or Path("bench-results") / time.strftime("%Y%m%d-%H%M%S")
    return check(
        BenchOptions(
            targets=parse_targets(str(pick("targets", DEFAULT_TARGETS))),
            concurrency=parse_concurrency(str(pick("concurrency", DEFAULT_CONCURRENCY))),
            duration=float(pick("duration", 15.0)),  # type: ignore[arg-type]
            workers=args.workers,
            workloads=parse_workloads(args.workload),
            upstream=parse_upstream(args.upstream),
            out=out,
            rounds=int(pick("rounds", 3)),  # type: ignore[call-overload]
            warmup=float(pick("warmup", 5.0)),  # type: ignore[arg-type]
            index=str(pick("index", "bench-synthetic")),
            catalogue_size=int(pick("catalogue_size", 100_000)),  # type: ignore[call-overload]
            seed=args.seed,
            quick=args.quick,
            secure_es=args.secure_es,
        )
    )


def run(args: argparse.Namespace) -> int:
    options = options_from(args)
    wrk_path = shutil.which("wrk")
    if wrk_path is None:
        raise UsageError("bench needs wrk: apt-get install wrk (nox -s bench installs it)")
    try:
        import matplotlib  # noqa: F401

        if {"fastapi", "fastapi-tls"} & set(options.targets):
            import fastapi  # noqa: F401
        if "asyncio-uvloop" in options.targets:
            import uvloop  # noqa: F401
    except ImportError as error:
        raise UsageError(
            f"bench needs the bench extra ({error.name} is missing): pip install 'trio_books[bench]'"
        ) from None
    try:
        config = connection_config(load_settings())
    except ValueError as error:
        raise invalid_settings(error) from None
    # One node: es-direct and Elasticsearch's CPU figures are that node's.
    config = config.replace(nodes=config.nodes[:1])

    from trio_books.bench import report, runner

    start_machine = report.machine()
    es_version = trio.run(_es_version, config)
    if es_version is None:
        raise UsageError(
            f"Elasticsearch does not answer at {config.urls[0]} (set TRIO_BOOKS_ES_URLS)"
        )
    results = runner.run_benchmark(options, wrk_path, config)
    command = "python -m trio_books bench " + shlex.join(
        sys.argv[2:] if sys.argv[1:2] == ["bench"] else []
    )
    full = {
        "machine": start_machine,
        "load_average_end": report.machine()["load_average"],
        "versions": report.versions(wrk_path, es_version),
        "options": {
            "targets": list(options.targets),
            "concurrency": list(options.concurrency),
            "duration_s": options.duration,
            "workers": options.workers,
            "workload": ",".join(options.workloads),
            "upstream": options.upstream.label(),
            "rounds": options.rounds,
            "warmup_s": options.warmup,
            "quick": options.quick,
            "secure_es": options.secure_es,
        },
        "targets": {
            name: {"server": t.server, "es_client": t.es_client}
            for name, t in TARGETS.items()
            if name in options.targets
        },
        **results,
    }
    for path in report.write_outputs(options.out, options, full, command):
        print(path)
    return 0


async def _es_version(config: ConnectionConfig) -> str | None:
    """The node's version; ``None`` if it gave none.

    Raises:
        UsageError: the node could not be reached or refused the call (its reason).
    """
    try:
        async with open_elasticsearch(config, "trio", call_seconds=10) as es:
            found = await es.request(
                "GET", "/_nodes/_local", params={"filter_path": "nodes.*.version"}
            )
    except TrioBooksError as error:
        raise UsageError(f"Elasticsearch at {config.urls[0]}: {error.message}") from None
    try:
        return str(next(iter(found["nodes"].values()))["version"])
    except (KeyError, StopIteration, TypeError):
        return None
