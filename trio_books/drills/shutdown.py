"""SIGTERM under load: in-flight requests finish, the server exits 0, nothing in flight is lost.

Clients search steadily; the drill sends SIGTERM to the server (the parent
process when there are workers) and keeps sending until the server is gone.
It runs three ways: one worker; two workers with the signal to the parent; two
workers with the signal to the whole process group, as systemd (its default
``KillMode=control-group``), a container runtime's init or a terminal's Ctrl-C
deliver it, so that each worker hears it too.
Requests sent after the signal may be refused (the server has stopped
accepting): they are counted apart, as a load balancer would retry them
elsewhere.

A request sent just before the signal may still never be read: at the signal
the server closes its idle keep-alive connections and its listener, and a
request on its way over one (or a new connection a client opened just then)
meets a closed connection (HTTP/1.1's keep-alive race, RFC 9112 §9.3.1: a
client may send such an idempotent request again). From the client's side
that looks like a request lost in flight, and the two cannot be told apart by
timing on a busy machine. So the server settles it: each worker logs, as it
closes, how many requests its app began and how many it answered in full
(:mod:`trio_books.api.tally`). The drill passes when every request the server
began was answered, every answer reached a client, and no in-flight request
got an error status; the unanswered ones are printed with how they ended.
"""

from __future__ import annotations

import os
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
    for workers, group in ((1, False), (2, False), (2, True)):
        await _one(options, workers, group, report)
    report.close()
    return report


async def _one(options: DrillOptions, workers: int, group: bool, report: Report) -> None:
    paths = search_paths(300)
    es_port = options.es_port
    run = f"{workers} worker(s), to the {'process group' if group else 'server'}"
    async with (
        drill_index(options.es, f"shutdown{workers}{'g' if group else ''}") as index,
        running_server(options.es, index, build=options.build, workers=workers) as server,
        http_client(server.url, CLIENTS, timeout=15) as client,
    ):
        outcomes: list[Outcome] = []
        signalled: list[float] = []
        exit_code: list[int | None] = []
        exit_seconds: list[float] = []

        async def terminate_soon() -> None:
            await trio.sleep(2.0 if options.quick else 5.0)
            report.say(
                f"{run}: SIGTERM with {server.process_count()} processes, "
                f"{connections_to(server.pid, es_port)} connections to Elasticsearch"
            )
            signalled.append(trio.current_time())
            if group:
                # The server runs in a session of its own: the group is it and its workers.
                os.killpg(server.pid, signal.SIGTERM)
            else:
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
        refused = [o for o in in_flight if o.status != 200 and o.status is not None]
        unanswered = [o for o in in_flight if o.status is None]
        after = [o for o in outcomes if o.started >= at]
        answered_after = sum(1 for o in after if o.status is not None)
        refusals = Counter(o.error for o in after if o.error)
        # The server's own count settles which unanswered requests it had read.
        closing = server.closing_lines()
        begun = sum(int(line.get("requests_begun", 0)) for line in closing)
        answered = sum(int(line.get("requests_answered", 0)) for line in closing)
        received = server.probes_answered + sum(1 for o in outcomes if o.status is not None)
        dropped = max(0, begun - answered)
        lost_on_the_way = abs(answered - received)
        failed = len(refused) + dropped + lost_on_the_way
        report.say(
            f"{run}: {len(in_flight)} requests sent before SIGTERM, "
            f"{len(straddling)} of them still in flight at the signal; "
            f"answered with an error status: {len(refused)} "
            f"{dict(Counter(f'{o.status} {o.detail}' for o in refused))}; "
            f"unanswered: {len(unanswered)} "
            f"{dict(Counter(f'{o.error}: {o.detail}' for o in unanswered))}"
            f" ({', '.join(f'{o.started - at:+.3f}..{o.ended - at:+.3f} s' for o in unanswered)}); "
            f"the server began {begun} requests and answered {answered}, "
            f"the clients received {received} answers; "
            f"after the signal: {len(after)} sent, {answered_after} answered, "
            f"{len(after) - answered_after} refused {dict(refusals)}; exit code {exit_code[0]} "
            f"after {exit_seconds[0]:.1f} s; "
            f"Elasticsearch clients closed: {len(closing)}"
        )
        report.figures[f"workers_{workers}{'_group' if group else ''}"] = {
            "before_signal": len(in_flight),
            "in_flight_at_signal": len(straddling),
            "failed_in_flight": failed,
            "unread_by_server": len(unanswered),
            "server_begun": begun,
            "server_answered": answered,
            "answers_received": received,
            "after_signal": len(after),
            "exit_code": exit_code[0],
            "exit_seconds": round(exit_seconds[0], 1),
            "es_clients_closed": len(closing),
        }
        report.check(
            not refused,
            f"{len(refused)} in-flight requests answered with an error ({run})",
        )
        report.check(
            dropped == 0,
            f"the server began {begun} requests but answered only {answered} ({run})",
        )
        report.check(
            answered == received,
            f"the server answered {answered} requests, the clients received {received} ({run})",
        )
        report.check(exit_code[0] == 0, f"exit code {exit_code[0]} ({run})")
        report.check(straddling != [], f"no request was in flight at the signal ({run})")
        report.check(
            len(closing) == workers,
            f"{len(closing)} of {workers} Elasticsearch clients closed ({run})",
        )
