"""SIGTERM under load: in-flight requests finish, the server exits 0, nothing in flight is lost.

Clients search steadily; the drill sends SIGTERM to the server (the parent
process when there are workers) and keeps sending until the server is gone.
A request *in flight* is one sent before the signal: each must be answered
200, or never have been read. Requests sent after it may be refused (the
server has stopped accepting): they are counted apart, as a load balancer
would retry them elsewhere.

"Never read": at the signal, Hypercorn closes its idle keep-alive
connections, and a request already on its way over one meets a connection
closed before a byte of answer (HTTP/1.1's keep-alive race, RFC 9112 §9.3.1:
a client may send such an idempotent request again). Those are counted and
printed apart; any other failure of an in-flight request (cut mid-answer, a
worker ended under it, an error status) fails the drill.
"""

from __future__ import annotations

import signal
from collections import Counter

import trio

from trio_books.drills.catalogue import drill_index, search_paths
from trio_books.drills.load import Outcome, generate, http_client
from trio_books.drills.process import connections_to, running_server
from trio_books.drills.report import DrillOptions, Report

CLIENTS = 16


async def drill(options: DrillOptions) -> Report:
    report = Report("shutdown")
    for workers in (1, 2):
        await _one(options, workers, report)
    report.close()
    return report


async def _one(options: DrillOptions, workers: int, report: Report) -> None:
    paths = search_paths(300)
    es_port = options.es_port
    async with (
        drill_index(options.es, f"shutdown{workers}") as index,
        running_server(options.es, index, workers=workers) as server,
        http_client(server.url, CLIENTS, timeout=15) as client,
    ):
        outcomes: list[Outcome] = []
        signalled: list[float] = []
        exit_code: list[int | None] = []
        exit_seconds: list[float] = []

        async def terminate_soon() -> None:
            await trio.sleep(2.0 if options.quick else 5.0)
            report.say(
                f"{workers} worker(s): SIGTERM with {server.process_count()} processes, "
                f"{connections_to(server.pid, es_port)} connections to Elasticsearch"
            )
            signalled.append(trio.current_time())
            server.process.send_signal(signal.SIGTERM)
            exit_code.append(await server.wait_exit(30))
            exit_seconds.append(trio.current_time() - signalled[0])

        # The load stops when the server has exited (or after 40 s at most).
        async with trio.open_nursery() as nursery:
            nursery.start_soon(terminate_soon)
            await generate(
                client,
                paths,
                concurrency=CLIENTS,
                seconds=40,
                outcomes=outcomes,
                stop=lambda: bool(exit_code),
                # Strict: a request the server dropped is a failure, not retried.
                retry_stale=False,
            )
        at = signalled[0]
        in_flight = [o for o in outcomes if o.started < at]
        straddling = [o for o in in_flight if o.ended > at]
        unread = [o for o in in_flight if o.unanswered]
        failed = [o for o in in_flight if o.status != 200 and not o.unanswered]
        after = [o for o in outcomes if o.started >= at]
        answered_after = sum(1 for o in after if o.status is not None)
        refusals = Counter(o.error for o in after if o.error)
        closed_clients = server.log().count("closed the Elasticsearch client")
        report.say(
            f"{workers} worker(s): {len(in_flight)} requests sent before SIGTERM, "
            f"{len(straddling)} of them still in flight at the signal; failed: {len(failed)} "
            f"{dict(Counter(o.error or o.status for o in failed))}"
            f" ({', '.join(f'{o.started - at:+.3f}..{o.ended - at:+.3f} s' for o in failed)}); "
            f"closed unread at the signal (keep-alive race): {len(unread)}; "
            f"after it: {len(after)} sent, {answered_after} answered, "
            f"{len(after) - answered_after} refused {dict(refusals)}; exit code {exit_code[0]} "
            f"after {exit_seconds[0]:.1f} s; "
            f"Elasticsearch clients closed: {closed_clients}"
        )
        report.figures[f"workers_{workers}"] = {
            "before_signal": len(in_flight),
            "in_flight_at_signal": len(straddling),
            "failed_in_flight": len(failed),
            "closed_unread": len(unread),
            "after_signal": len(after),
            "exit_code": exit_code[0],
            "exit_seconds": round(exit_seconds[0], 1),
            "es_clients_closed": closed_clients,
        }
        report.check(not failed, f"{len(failed)} in-flight requests failed ({workers} workers)")
        report.check(exit_code[0] == 0, f"exit code {exit_code[0]} ({workers} workers)")
        report.check(
            straddling != [], f"no request was in flight at the signal ({workers} workers)"
        )
        report.check(
            closed_clients == workers, f"{closed_clients} of {workers} Elasticsearch clients closed"
        )
