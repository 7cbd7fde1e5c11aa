"""Several nodes: the backoff schedule, round-robin over the living, failover, shedding, hedging."""

from __future__ import annotations

import time

import httpx
import pytest
import trio
from http_peer import HttpPeer
from quart.typing import TestClientProtocol as Client

from trio_books.core.timeline import Timeline
from trio_books.core.timing import parse_timing_entries
from trio_books.errors import ConnectionsExhausted, ElasticsearchUnavailable
from trio_books.es.client import Elasticsearch
from trio_books.es.opening import ShardedTransport, open_http_client
from trio_books.settings import Settings
from trio_books.transport.nodes import NodeSet, dead_backoff
from trio_books.transport.quantile import RollingQuantile
from trio_books.trio.app import create_app
from trio_books.trio.hedging import hedged
from trio_books.trio.transport import TrioTransport


def test_backoff_is_elastics_schedule() -> None:
    assert [dead_backoff(n) for n in range(8)] == [0, 1, 2, 4, 8, 16, 30, 30]


def test_round_robin_passes_over_dead_nodes_until_their_backoff_ends() -> None:
    nodes = NodeSet(["a", "b", "c"])
    assert [nodes.pick(0.0) for _ in range(4)] == ["a", "b", "c", "a"]
    assert nodes.mark_dead("b", 10.0) == 1.0
    assert [nodes.pick(10.5) for _ in range(4)] == ["c", "a", "c", "a"]
    assert nodes.pick(11.0, exclude={"a"}) in {"b", "c"}
    assert nodes.mark_dead("b", 11.0) == 2.0  # failed again on its retry: twice as long
    nodes.mark_alive("b")
    assert "b" in {nodes.pick(11.1) for _ in range(3)}


def test_when_every_node_is_dead_the_first_to_come_back_is_tried() -> None:
    nodes = NodeSet(["a", "b"])
    nodes.mark_dead("a", 0.0)
    nodes.mark_dead("b", 0.5)
    assert nodes.pick(0.6) == "a"
    assert nodes.pick(0.6, exclude={"a", "b"}) is None


def test_rolling_p95() -> None:
    quantile = RollingQuantile(0.95, window=100, every=1, min_samples=20)
    for n in range(19):
        quantile.add(n / 1000)
    assert quantile.value is None
    for n in range(19, 100):
        quantile.add(n / 1000)
    assert quantile.value == pytest.approx(0.095)


async def dead_port() -> int:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


@pytest.mark.parametrize("raw", [False, True], ids=["through-httpx", "raw"])
async def test_a_refusing_node_is_skipped_and_the_attempt_recorded(es_url: str, raw: bool) -> None:
    dead = f"http://127.0.0.1:{await dead_port()}"
    timeline = Timeline(cancelled=trio.Cancelled)
    transport = TrioTransport()
    async with open_http_client(timeout=5, max_connections=4, transport=transport) as http:
        es = Elasticsearch(http, [dead, es_url], raw=transport if raw else None)
        with timeline.span("hits") as span:
            health = await es.cluster_health()
        assert health["status"] in {"green", "yellow"}
        assert span.node == es_url
        assert [(s.name, s.node, s.outcome) for s in timeline.spans] == [
            ("hits", es_url, "ok"),
            ("hits#try1", dead, "error"),
        ]
        # The dead node now sits out: the next calls go straight to the living one.
        for _ in range(3):
            await es.cluster_health()
        assert es.nodes.dead(time.monotonic()) == [dead]


async def test_no_node_left_raises_unavailable() -> None:
    urls = [f"http://127.0.0.1:{await dead_port()}" for _ in range(2)]
    async with open_http_client(timeout=5, max_connections=4, transport=TrioTransport()) as http:
        with pytest.raises(ElasticsearchUnavailable):
            await Elasticsearch(http, urls).cluster_health()


async def test_full_pools_on_every_node_answer_503_at_once(nursery: trio.Nursery) -> None:
    peers = [await nursery.start(HttpPeer().serve) for _ in range(2)]
    transport = TrioTransport(connections_per_node=1, max_waiting_per_node=0)
    async with open_http_client(timeout=5, max_connections=4, transport=transport) as http:
        es = Elasticsearch(http, [peer.url for peer in peers], retries=2, raw=transport)
        for peer in peers:
            nursery.start_soon(http.get, f"{peer.url}/hang")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(ConnectionsExhausted) as caught:
            await es.request("GET", "/echo")
        # At once: each node's pool shed the call rather than queue it for a slot
        # the hanging requests never give back.
        stats = transport.stats().values()
        assert [(pool.shed, pool.waiting, pool.in_use) for pool in stats] == [(1, 0, 1)] * 2
        assert caught.value.status == 503
        assert caught.value.headers() == {"Retry-After": "1"}
        # Shedding is our own load, not a node's fault: no node is marked dead.
        assert es.nodes.dead(time.monotonic()) == []
        nursery.cancel_scope.cancel()


async def test_hedge_fires_after_the_delay_and_the_first_answer_wins(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timeline = Timeline(cancelled=trio.Cancelled, clock=trio.current_time)
    calls = []

    async def call(seconds_left: float) -> dict[str, object]:
        calls.append(trio.current_time())
        # The first attempt is slow (a paused node), the hedge answers fast.
        await trio.sleep(1.0 if len(calls) == 1 else 0.01)
        return {"from": len(calls)}

    with timeline.span("hits"):
        answer = await hedged(call, 2.0, delay=0.1, timeline=timeline, name="hits")
    assert answer == {"from": 2}
    outcomes = {span.name: span.outcome for span in timeline.spans}
    assert outcomes == {"hits": "ok", "hits#first": "lost a hedge", "hits#hedge": "ok"}
    assert calls[1] - calls[0] == pytest.approx(0.1)


async def test_no_hedge_when_the_first_answers_in_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timeline = Timeline(cancelled=trio.Cancelled, clock=trio.current_time)

    async def call(seconds_left: float) -> dict[str, object]:
        await trio.sleep(0.05)
        return {}

    with timeline.span("hits"):
        await hedged(call, 2.0, delay=0.1, timeline=timeline, name="hits")
    assert [span.name for span in timeline.spans] == ["hits", "hits#first"]


async def test_hedged_search_shows_its_attempts_in_server_timing(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"hedge_hits": True, "hedge_delay_ms": 0.001})
    async with create_app(settings).test_app() as test_app:
        client: Client = test_app.test_client()
        response = await client.get("/api/v1/search/?q=the")
    assert response.status_code == 200
    names = {entry.name for entry in parse_timing_entries(response.headers["Server-Timing"])}
    assert {"es-hits", "es-hits#first"} <= names


@pytest.mark.parametrize("chosen", ["stock", "sharded"])
async def test_httpx_baselines_still_selectable(api_settings: Settings, chosen: str) -> None:
    settings = api_settings.model_copy(update={"es_transport": chosen})
    app = create_app(settings)
    async with app.test_app() as test_app:
        response = await test_app.test_client().get("/api/v1/search/?q=the")
        assert response.status_code == 200
        transport = app.extensions["trio_books.transport"]
    if chosen == "stock":
        # httpx's own transport as it ships, not the project's, not sharded.
        assert type(transport) is httpx.AsyncHTTPTransport
    else:
        assert type(transport) is ShardedTransport


def test_overloaded_is_a_503_with_retry_after() -> None:
    error = ConnectionsExhausted("busy")
    assert (error.status, error.code) == (503, "overloaded")
    assert isinstance(error, ElasticsearchUnavailable)
