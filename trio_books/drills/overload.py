"""Overload: far more clients than the service can serve at once.

Three phases against a real server: a light load (the baseline), a flood well
past the knee from wrk (with the light load beside it as a probe: its accepted
requests measure what a real user waits), and the light load again. The service must shed the excess with
fast 503s carrying ``Retry-After``, keep the latency of what it accepts
bounded, keep its memory flat, and serve the light load again at once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from functools import partial
from typing import cast

import trio

from trio_books.drills.catalogue import drill_index, search_paths
from trio_books.drills.load import Outcome, generate, http_client, summarise
from trio_books.drills.process import running_server
from trio_books.drills.report import MIB, DrillOptions, Report
from trio_books.drills.wrk_load import WrkLoad, wrk_load

LIGHT_CLIENTS = 4
# Recovery starts this long after the flood's connections have closed: the
# server learns of each close by reading it, and the requests the flood left
# inside (up to every slot and queue place) are cancelled then. A service that
# took longer to let go of abandoned work would still fail the recovery.
SETTLE_SECONDS = 0.5


async def drill(options: DrillOptions) -> Report:
    report = Report("overload")
    # wrk's connections: each keeps one request in flight, far past the knee.
    flood_clients = 128 if options.quick else 512
    light_seconds, flood_seconds = (2.0, 6.0) if options.quick else (5.0, 20.0)
    paths = search_paths(500)
    async with (
        drill_index(options.es, "overload") as index,
        running_server(options.es, index, build=options.build) as server,
        trio.open_nursery() as nursery,
    ):
        # The sampler is the nursery's only long task; cancelled when the phases end.
        nursery.start_soon(server.sample_memory)
        async with http_client(server.url, LIGHT_CLIENTS) as client:
            phases: dict[str, list[Outcome]] = {}
            for phase, seconds in (
                ("baseline", light_seconds),
                ("flood", flood_seconds),
                ("recovery", light_seconds),
            ):
                flooding = phase == "flood"
                if phase == "recovery":
                    await trio.sleep(SETTLE_SECONDS)
                report.say(
                    f"{phase}: {LIGHT_CLIENTS} probe clients"
                    + (f" beside a flood of {flood_clients} wrk connections" if flooding else "")
                    + f" for {seconds:.0f} s"
                )
                rss_before = server.rss()
                outcomes: list[Outcome] = []
                retries: list[float] = []
                flooded: list[WrkLoad] = []
                async with trio.open_nursery() as phase_tasks:
                    # The probe: a few well-behaved clients whose accepted requests
                    # measure the latency a real user sees during the flood.
                    phase_tasks.start_soon(
                        partial(
                            generate,
                            client,
                            paths,
                            concurrency=LIGHT_CLIENTS,
                            seconds=seconds,
                            outcomes=outcomes,
                            retries=retries,
                        )
                    )
                    if flooding:
                        phase_tasks.start_soon(
                            _flood_into, flooded, server.url, paths, flood_clients, seconds
                        )
                phases[phase] = outcomes
                summary = summarise(outcomes, seconds)
                report.say(
                    f"{phase}: probe {summary.line()}; RSS {rss_before / MIB:.0f} → {server.rss() / MIB:.0f} MiB"
                )
                figures: dict[str, object] = {
                    "probe_requests": summary.requests,
                    "probe_ok": summary.ok,
                    "probe_503": summary.shed,
                    "probe_504": summary.timed_out,
                    "probe_other": summary.other_status + summary.errors,
                    "probe_errors": dict(Counter(o.error for o in outcomes if o.error)),
                    "stale_connection_retries": len(retries),
                    "p99_accepted_ms": round(summary.p99_ok_ms, 1),
                    "p99_503_ms": round(summary.p99_shed_ms, 1),
                }
                if flooded:
                    report.say(f"{phase}: {flooded[0].line()}")
                    figures["wrk"] = asdict(flooded[0])
                report.figures[phase] = figures
        nursery.cancel_scope.cancel()
    flood, recovery, baseline = (report.figures[p] for p in ("flood", "recovery", "baseline"))
    wrk_seen = cast(dict[str, float], flood["wrk"])
    shed = [o for o in phases["flood"] if o.status == 503]
    report.figures["peak_rss_mib"] = round(server.peak_rss / MIB, 1)
    report.figures["rss_start_mib"] = round(server.samples[0] / MIB, 1) if server.samples else 0
    report.check(wrk_seen["shed"] > 0, "the flood was not shed: no 503 answers")
    report.check(
        wrk_seen["bare_503"] == 0 and all(o.retry_after for o in shed),
        "a 503 answer carried no Retry-After",
    )
    # The flood is answered 200 or 503 and nothing else: a 504 means an accepted
    # search outlived its deadline (admission let in more than it can serve), a
    # socket error means a connection was dropped rather than answered.
    report.check(
        wrk_seen["late"] == 0 and flood["probe_504"] == 0,
        "the flood got 504s: accepted searches outlived their deadline",
    )
    report.check(
        wrk_seen["other"] == 0 and flood["probe_other"] == 0,
        "the flood got statuses other than 200/503 or transport errors",
    )
    report.check(wrk_seen["socket_errors"] == 0, "wrk's connections saw socket errors")
    for phase, seen in (("baseline", baseline), ("recovery", recovery)):
        report.check(
            seen["probe_ok"] == seen["probe_requests"] and seen["probe_requests"] != 0,
            f"the light load {'after' if phase == 'recovery' else 'before'} the flood"
            f" was not all 200: {seen['probe_ok']} of {seen['probe_requests']}",
        )
    report.check(flood["probe_ok"] > 0, "no probe request was accepted during the flood")
    if not options.quick:
        # Accepted searches run under the 2 s search deadline plus a 0.1 s queue
        # wait; far past that, requests queue without bound somewhere. (Not
        # checked in the quick version: CI machines' speed is not ours to assert.)
        report.check(
            float(cast(float, flood["p99_accepted_ms"])) < 3000,
            "accepted requests' p99 went past 3 s",
        )
    report.check(
        server.peak_rss < 3 * max(server.samples[:5] or [1]),
        "memory grew more than threefold under the flood",
    )
    report.close()
    return report


async def _flood_into(
    into: list[WrkLoad], url: str, paths: list[str], connections: int, seconds: float
) -> None:
    into.append(await wrk_load(url, paths, connections=connections, seconds=seconds))
