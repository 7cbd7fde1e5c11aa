"""Soak: steady mixed searches for a long time; nothing may creep.

After a warm-up (a tenth of the run, at least 10 s) the drill notes the
server's open file descriptors, connections to Elasticsearch, resident memory
and the p99 latency of the last window; at the end it notes them again. Leaks
show as growth between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from trio_books.drills.catalogue import drill_index, search_paths
from trio_books.drills.load import Outcome, generate, http_client, percentile
from trio_books.drills.process import Server, connections_to, open_fds, running_server
from trio_books.drills.report import MIB, DrillOptions, Report

CLIENTS = 8
# Elasticsearch calls one search may have in flight: hits, three facets, suggestions.
BRANCHES = 5
DEFAULT_SECONDS = 600.0
QUICK_SECONDS = 30.0


@dataclass(frozen=True)
class Reading:
    fds: int
    es_connections: int
    rss_mib: float
    p99_ms: float
    requests: int

    def line(self) -> str:
        return (
            f"{self.fds} fds, {self.es_connections} connections to Elasticsearch, "
            f"RSS {self.rss_mib:.1f} MiB, p99 {self.p99_ms:.1f} ms over {self.requests} requests"
        )


def read(server: Server, es_port: int, window: list[Outcome]) -> Reading:
    ok = [o.seconds * 1000 for o in window if o.status == 200]
    return Reading(
        fds=open_fds(server.pid),
        es_connections=connections_to(server.pid, es_port),
        rss_mib=server.rss() / MIB,
        p99_ms=percentile(ok, 0.99),
        requests=len(window),
    )


async def drill(options: DrillOptions) -> Report:
    report = Report("soak")
    seconds = options.duration or (QUICK_SECONDS if options.quick else DEFAULT_SECONDS)
    window = max(10.0, seconds / 10)
    es_port = options.es_port
    paths = search_paths(2000)
    outcomes: list[Outcome] = []
    readings: dict[str, Reading] = {}
    async with (
        drill_index(options.es, "soak") as index,
        running_server(options.es, index, build=options.build) as server,
        http_client(server.url, CLIENTS) as client,
    ):
        report.say(f"{CLIENTS} clients of mixed searches for {seconds:.0f} s")

        async def take_readings() -> None:
            started = trio.current_time()
            await trio.sleep(window)
            readings["after warm-up"] = read(server, es_port, list(outcomes))
            report.say(f"after warm-up: {readings['after warm-up'].line()}")
            while trio.current_time() - started < seconds - window:
                await trio.sleep(window)
                now = trio.current_time()
                recent = [o for o in outcomes if o.started >= now - window]
                report.say(f"at {now - started:.0f} s: {read(server, es_port, recent).line()}")

        # The load and the reader are the nursery's two tasks; both end with the run.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(take_readings)
            await generate(client, paths, concurrency=CLIENTS, seconds=seconds, outcomes=outcomes)
            nursery.cancel_scope.cancel()
        end = trio.current_time()
        readings["end"] = read(server, es_port, [o for o in outcomes if o.started >= end - window])
        report.say(f"at the end: {readings['end'].line()}")
    start, final = readings["after warm-up"], readings["end"]
    failures = sum(1 for o in outcomes if o.status != 200)
    report.figures = {
        "seconds": seconds,
        "requests": len(outcomes),
        "failures": failures,
        "start": start.__dict__,
        "end": final.__dict__,
        "rss_change_pct": round(100 * (final.rss_mib - start.rss_mib) / start.rss_mib, 1),
        "p99_change_pct": round(100 * (final.p99_ms - start.p99_ms) / max(start.p99_ms, 1e-9), 1),
    }
    report.check(failures == 0, f"{failures} requests failed")
    # The pool keeps between none and one connection per concurrent Elasticsearch call
    # (clients × branches), opening and expiring them as searches come and go; a leak of
    # one descriptor or connection per request would show as thousands.
    pool_bound = CLIENTS * BRANCHES
    report.check(
        final.es_connections <= max(start.es_connections, pool_bound),
        f"connections to Elasticsearch grew: {start.es_connections} → {final.es_connections}",
    )
    pool_change = max(0, final.es_connections - start.es_connections)
    report.check(
        final.fds <= start.fds + pool_change + 5, f"descriptors grew: {start.fds} → {final.fds}"
    )
    report.check(final.rss_mib <= start.rss_mib * 1.15, "memory grew by more than 15 %")
    report.close()
    return report
