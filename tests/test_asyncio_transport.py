"""The asyncio shell of the transport, against the real Elasticsearch and a closed port.

These are plain functions running ``asyncio.run``: the suite's own loop is Trio's.
"""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from trio_books.asyncio.hedging import hedged
from trio_books.asyncio.transport import AsyncioTransport
from trio_books.core.timeline import Timeline
from trio_books.es.client import Elasticsearch
from trio_books.es.opening import open_http_client


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("raw", [False, True], ids=["through-httpx", "raw"])
def test_asyncio_transport_reuses_connections_and_fails_over(es_url: str, raw: bool) -> None:
    async def main() -> None:
        transport = AsyncioTransport(connections_per_node=4)
        async with open_http_client(timeout=10, max_connections=4, transport=transport) as http:
            urls = [f"http://127.0.0.1:{closed_port()}", es_url]
            es = Elasticsearch(http, urls, raw=transport if raw else None)
            answers = await asyncio.gather(*(es.cluster_health() for _ in range(12)))
            assert all(answer["status"] in {"green", "yellow"} for answer in answers)
            stats = transport.stats()[es_url.removeprefix("http://")]
            assert stats.opened <= 4
            assert (stats.in_use, stats.waiting) == (0, 0)
            # Cancelled mid-flight: the slots come back, nothing half-read stays pooled.
            # Each call waits (up to 30 s) for a node that will never join, so all four
            # connections are held at once however slowly the machine runs; a plain
            # health call could end before the fourth connection was even taken.
            held = {"wait_for_nodes": "99", "timeout": "30s"}
            tasks = [
                asyncio.create_task(es.request("GET", "/_cluster/health", params=held))
                for _ in range(8)
            ]
            async with asyncio.timeout(30):  # until they hold every connection
                while transport.stats()[es_url.removeprefix("http://")].in_use < 4:
                    await asyncio.sleep(0.01)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            stats = transport.stats()[es_url.removeprefix("http://")]
            assert (stats.in_use, stats.waiting) == (0, 0)
            assert (await es.cluster_health())["status"] in {"green", "yellow"}

    asyncio.run(main())


def test_asyncio_hedge_first_answer_wins() -> None:
    async def main() -> None:
        timeline = Timeline(cancelled=asyncio.CancelledError)
        calls: list[int] = []

        async def call(seconds_left: float) -> dict[str, object]:
            calls.append(len(calls))
            await asyncio.sleep(1.0 if len(calls) == 1 else 0.01)
            return {"from": len(calls)}

        with timeline.span("hits"):
            answer = await hedged(call, 2.0, delay=0.05, timeline=timeline, name="hits")
        assert answer == {"from": 2}
        assert {span.name: span.outcome for span in timeline.spans} == {
            "hits": "ok",
            "hits#first": "lost a hedge",
            "hits#hedge": "ok",
        }

    asyncio.run(main())


def test_asyncio_transport_refused_is_connect_error() -> None:
    async def main() -> None:
        async with httpx.AsyncClient(transport=AsyncioTransport()) as http:
            try:
                await http.get(f"http://127.0.0.1:{closed_port()}/")
            except httpx.ConnectError:
                return
            raise AssertionError("expected a ConnectError")

    asyncio.run(main())
