"""``python -m trio_books bench-churn``: connections opened when searches keep missing their deadline.

A search whose deadline (``timeout=100``) is shorter than Elasticsearch's
answer cuts each of its calls. Closing a cut call's connection means a new
connection for the next call: at 32 searches in flight, four calls each, a
reconnect storm and a pile of sockets in TIME_WAIT. The transport instead
drains a cut call (reads the rest of its answer in a task of the client's own,
within ``TRIO_BOOKS_ES_DRAIN_SECONDS``) and keeps its connection.

This command measures both, one after the other, for each build: the same
searches through ``python -m trio_books serve``, with drains off
(``ES_DRAIN_SECONDS=0``, the transport before them) and on, against the
latency STAND-IN (:mod:`.latency_standin`, not Elasticsearch: every call answers
after ``--latency-ms``, so every call is slower than the deadline). It prints
the connections each server opened per 1,000 searches, as its transport counted
them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

from trio_books.bench import processes
from trio_books.bench.targets import TARGETS
from trio_books.errors import UsageError
from trio_books.load.commands import whole
from trio_books.transport.connection_pool import DRAIN_SECONDS

BUILDS = ("trio", "asyncio")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench-churn",
        help="connections opened per 1,000 searches that miss their deadline, drains off and on",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_argument("--searches", default="1000", help="searches per run (default %(default)s)")
    bench.add_argument(
        "--concurrency", default="32", help="searches in flight (default %(default)s)"
    )
    bench.add_argument(
        "--latency-ms", default="150", help="the stand-in's answer time (default %(default)s)"
    )
    bench.add_argument(
        "--timeout-ms", default="100", help="each search's deadline (default %(default)s)"
    )
    bench.set_defaults(handler=run_churn)


@dataclass(frozen=True)
class ChurnRun:
    build: str
    drain_seconds: float
    searches: int
    statuses: dict[int, int]
    opened: int
    reused: int
    drained: int

    @property
    def opened_per_1000(self) -> float:
        return self.opened * 1000 / self.searches


def run_churn(args: argparse.Namespace) -> int:
    searches = whole(args.searches, "--searches", minimum=1)
    concurrency = whole(args.concurrency, "--concurrency", minimum=1)
    latency = whole(args.latency_ms, "--latency-ms", minimum=1)
    deadline = whole(args.timeout_ms, "--timeout-ms", minimum=100)
    if latency <= deadline:
        raise UsageError("--latency-ms must be longer than --timeout-ms, or no call is cut")
    runs = measure(searches, concurrency, latency, deadline)
    print(report(runs, latency, deadline))
    return 0


def measure(searches: int, concurrency: int, latency_ms: int, timeout_ms: int) -> list[ChurnRun]:
    """Each build with drains off, then on, against one stand-in."""
    runs: list[ChurnRun] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
        logs = Path(scratch)
        port = processes.free_port()
        standin = processes.start_standin(port, latency_ms, logs / "standin.log")
        stack.callback(processes.stop_server, standin)
        # Drains get the default, or twice the overrun when that is longer.
        drains_on = max(DRAIN_SECONDS, 2 * (latency_ms - timeout_ms) / 1000)
        for build in BUILDS:
            for drain_seconds in (0.0, drains_on):
                runs.append(
                    _one_run(
                        build, drain_seconds, standin.url, searches, concurrency, timeout_ms, logs
                    )
                )
    return runs


def _one_run(
    build: str,
    drain_seconds: float,
    upstream: str,
    searches: int,
    concurrency: int,
    timeout_ms: int,
    logs: Path,
) -> ChurnRun:
    port = processes.free_port()
    log = logs / f"{build}-{drain_seconds:g}.log"
    server = processes.start_server(
        build,
        TARGETS[build].command(port, 1),
        env={
            "TRIO_BOOKS_ES_URLS": upstream,
            "TRIO_BOOKS_ES_DRAIN_SECONDS": str(drain_seconds),
            "TRIO_BOOKS_ACCESS_LOG": "false",
            "TRIO_BOOKS_LOG_FORMAT": "json",
        },
        url=f"http://127.0.0.1:{port}",
        ready_path="/healthz",
        log=log,
    )
    try:
        statuses = trio.run(_search, server.url, searches, concurrency, timeout_ms)
        # The last drains end within an overrun of the last search: their counts
        # are in the server's closing line only if they ended before it.
        time.sleep(drain_seconds + 0.2)
    finally:
        processes.stop_server(server)
    counters = processes.pool_counters(log)
    if counters is None:
        raise UsageError(f"{build} logged no connection counters: {processes.log_tail(log)}")
    return ChurnRun(
        build,
        drain_seconds,
        searches,
        statuses,
        counters["es_connections_opened"],
        counters["es_connections_reused"],
        counters["es_connections_drained"],
    )


async def _search(url: str, searches: int, concurrency: int, timeout_ms: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    left = searches
    path = f"/api/v1/search/?q=the+hunger+games&timeout={timeout_ms}"
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:

        async def client() -> None:
            # Each client sends its next search once its last is answered.
            nonlocal left
            while left > 0:
                left -= 1
                status = (await http.get(path)).status_code
                statuses[status] = statuses.get(status, 0) + 1

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(client)
    return statuses


def report(runs: list[ChurnRun], latency_ms: int, timeout_ms: int) -> str:
    lines = [
        f"searches with timeout={timeout_ms} ms against the latency stand-in "
        f"({latency_ms} ms a call, NOT Elasticsearch): every call is cut",
        "",
        "| build | drains | searches | answers | connections opened | per 1,000 searches "
        "| reused | drained |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        answers = ", ".join(f"{status}: {count}" for status, count in sorted(run.statuses.items()))
        drains = f"on ({run.drain_seconds:g} s)" if run.drain_seconds else "off"
        lines.append(
            f"| {run.build} | {drains} | {run.searches:,} | {answers} | {run.opened:,} "
            f"| {run.opened_per_1000:,.0f} | {run.reused:,} | {run.drained:,} |"
        )
    return "\n".join(lines)
