"""Slow and stuck clients: each kind is cut off by Hypercorn's timeouts without slowing the others.

Three kinds of client, each in many copies, against a real server while a
well-behaved client searches throughout:

- *trickling*: sends its request head a byte at a time and never finishes it;
- *non-reading*: sends a search and never reads the answer;
- *idle*: makes one request on a keep-alive connection, then sits on it.

The drill records when the server closes each connection and compares the
well-behaved client's latency (wrk, two connections, a process apart) with a
baseline taken before.
"""

from __future__ import annotations

import socket

import trio

from trio_books.drills.catalogue import drill_index, search_paths
from trio_books.drills.process import running_server
from trio_books.drills.report import DrillOptions, Report
from trio_books.drills.wrk_load import WrkLoad, wrk_load

KEEP_ALIVE = 2.0
HEAD = b"GET /api/v1/search/?q=night HTTP/1.1\r\nHost: drill\r\nUser-Agent: trickle\r\n\r\n"


async def _closed_after(stream: trio.SocketStream, started: float, limit: float) -> float | None:
    """Seconds from *started* until the server closed *stream* (reading and dropping data)."""
    with trio.move_on_after(limit):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        return trio.current_time() - started
    return None


async def trickling(host: str, port: int, limit: float) -> float | None:
    stream = await trio.open_tcp_stream(host, port)
    started = trio.current_time()
    async with stream:
        result: list[float | None] = []

        async def send_slowly() -> None:
            try:
                for byte in HEAD[:-2]:
                    await stream.send_all(bytes([byte]))
                    await trio.sleep(0.2)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_slowly)
            result.append(await _closed_after(stream, started, limit))
            nursery.cancel_scope.cancel()
        return result[0]


CLOSE_WAIT = 8  # Linux's TCP state once the peer has closed its side


async def non_reading(host: str, port: int, limit: float) -> float | None:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(HEAD.replace(b"q=night", b"q=night+garden&size=100"))
        started = trio.current_time()
        # Never reading: the kernel's TCP state says when the server has closed its side.
        with trio.move_on_after(limit):
            while stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != CLOSE_WAIT:
                await trio.sleep(0.05)
            return trio.current_time() - started
        return None


async def idle(host: str, port: int, limit: float) -> float | None:
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: drill\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += await stream.receive_some(65536)
        return await _closed_after(stream, trio.current_time(), limit)


async def drill(options: DrillOptions) -> Report:
    report = Report("slow-clients")
    copies = {"trickling": 20, "non-reading": 20, "idle": 300 if options.quick else 2000}
    limit = KEEP_ALIVE * 3 + 2
    paths = search_paths(200)
    env = {"TRIO_BOOKS_KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE)}
    async with (
        drill_index(options.es, "slow") as index,
        running_server(options.es, index, build=options.build, env=env) as server,
    ):
        host, port = server.url.removeprefix("http://").rsplit(":", 1)
        report.say(f"keep_alive_timeout {KEEP_ALIVE} s; clients: {copies}")
        # The well-behaved client is wrk, a process apart: the thousands of slow
        # clients' tasks in this one must not count as the server's slowness.
        alone = await wrk_load(server.url, paths, connections=2, seconds=3)
        report.say(f"baseline, alone: {alone.line()}")
        closed: dict[str, list[float | None]] = {kind: [] for kind in copies}
        beside: list[WrkLoad] = []

        async def one(kind: str) -> None:
            run = {"trickling": trickling, "non-reading": non_reading, "idle": idle}[kind]
            try:
                closed[kind].append(await run(host, int(port), limit))
            except OSError as error:
                report.say(f"{kind}: could not connect ({error})")
                closed[kind].append(None)

        async def well_behaved() -> None:
            beside.append(await wrk_load(server.url, paths, connections=2, seconds=limit))

        # The slow clients and the well-behaved one are this nursery's tasks.
        async with trio.open_nursery() as nursery:
            for kind, count in copies.items():
                for _ in range(count):
                    nursery.start_soon(one, kind)
            nursery.start_soon(well_behaved)
        during = beside[0]
        report.say(f"beside the slow clients: {during.line()}")
    for kind, times in closed.items():
        cut = [t for t in times if t is not None]
        report.say(
            f"{kind}: {len(cut)}/{len(times)} cut off by the server, after "
            f"{min(cut, default=0):.1f}-{max(cut, default=0):.1f} s"
        )
        report.figures[kind] = {
            "clients": len(times),
            "cut_off": len(cut),
            "max_s": max(cut, default=0),
        }
        report.check(
            len(cut) == len(times), f"{len(times) - len(cut)} {kind} clients were not cut off"
        )
    report.figures["others_p99_ms"] = {
        "alone": round(alone.p99_ms, 1),
        "beside_slow_clients": round(during.p99_ms, 1),
    }
    report.figures["others_answers"] = {"alone": alone.requests, "beside": during.requests}
    report.check(
        during.ok == during.requests and during.socket_errors == 0 and during.requests > 0,
        "the well-behaved client got failures beside them",
    )
    report.close()
    return report
