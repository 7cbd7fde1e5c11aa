"""Deadlines, partial answers, suggestions and traces, with slowness made for real.

Slowness comes from pausing a real Elasticsearch node (SIGSTOP: it accepts
connections and answers nothing) and outages from stopping it. Where a test
needs the hits answered before the node pauses, the production transport,
observed on its own fast path (``observed.py``), holds the facet calls until the
real hits answer has arrived, then pauses the node and lets them go: they reach
a genuinely frozen server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import trio
from conftest import TEST_ENGINE, TEST_ENGINE_VERSION, PausableNode
from observed import (
    Exchange,
    Observed,
    ObservedAsyncio,
    ObservedTrio,
    Observing,
    observed_transport,
)
from servers import api_client

from trio_books.core.mapping import index_body
from trio_books.core.timing import parse_timing_entries
from trio_books.es.client import Elasticsearch
from trio_books.es.opening import open_http_client
from trio_books.settings import Settings
from trio_books.trio.app import create_app

SEARCH = "/api/v1/search/"
FACETS = {"facet-tags", "facet-years", "facet-languages"}


class PauseAfterHits(Observing):
    """The production transport; facet calls wait for the real hits answer, which pauses the node.

    The calls run in the serving build's loop, Trio or asyncio, so the facets
    poll with that loop's sleep rather than wait on either's event.
    """

    pause: Callable[[], None]
    hits_answered = False

    async def before(self, call: Exchange) -> None:
        while "aggs" in call.body and not self.hits_answered:
            await self.sleep(0.005)

    async def after(self, call: Exchange) -> None:
        if call.body.get("track_total_hits") is True:
            self.pause()
            self.hits_answered = True


class PauseAfterHitsTrio(PauseAfterHits, ObservedTrio):
    pass


class PauseAfterHitsAsyncio(PauseAfterHits, ObservedAsyncio):
    pass


PAUSING: dict[str, type[PauseAfterHits]] = {
    "trio": PauseAfterHitsTrio,
    "asyncio": PauseAfterHitsAsyncio,
}


def pause_after_hits(settings: Settings, node: PausableNode, build: str) -> PauseAfterHits:
    transport = observed_transport(settings, build, Observed(), PAUSING[build])
    assert isinstance(transport, PauseAfterHits)
    transport.pause = node.pause
    return transport


def node_settings(node: PausableNode, index: str, **overrides: Any) -> Settings:
    return Settings(es_urls=[node.url], index=index, facet_size=100, **overrides)


async def test_facets_past_the_deadline_give_a_partial_answer(
    build: str, pausable_node: PausableNode, paused_catalogue: str
) -> None:
    # Long enough for the hits on a node started moments ago, on a busy machine.
    settings = node_settings(pausable_node, paused_catalogue, search_deadline=3.0)
    transport = pause_after_hits(settings, pausable_node, build)
    async with api_client(build, settings, transport=transport) as client:
        response = await client.get(f"{SEARCH}?q=the&trace=1")
    assert transport.observed.through_httpx == 0  # every call took production's path
    assert response.status_code == 200
    body = response.json()
    assert body["partial"] is True
    assert body["count"] > 0
    assert body["results"]
    assert {error["branch"] for error in body["errors"]} == FACETS
    assert all(error["reason"] == "timed out after 3000 ms" for error in body["errors"])
    outcomes = {task["name"]: task["outcome"] for task in body["trace"]["tasks"]}
    assert outcomes == {"es-hits": "ok", **{f"es-{name}": "timed out" for name in FACETS}}


async def test_required_failure_cancels_the_facets_at_once(
    build: str, pausable_node: PausableNode, index_name: str
) -> None:
    # A real Elasticsearch error: title_sort mapped as text cannot be sorted on.
    body = index_body()
    body["mappings"]["properties"] = {
        **body["mappings"]["properties"],
        "title_sort": {"type": "text"},
    }
    async with open_http_client(timeout=10, max_connections=2) as http:
        node_es = Elasticsearch(http, [pausable_node.url])
        await node_es.create_index(index_name, body)
        try:
            settings = node_settings(pausable_node, index_name, search_deadline=30.0)
            transport = pause_after_hits(settings, pausable_node, build)
            async with api_client(build, settings, transport=transport) as client:
                response = await client.get(f"{SEARCH}?sort=title&trace=1")
        finally:
            pausable_node.resume()
            await node_es.delete_index(index_name)
    assert transport.observed.through_httpx == 0  # every call took production's path
    assert response.status_code == 502
    failure = response.json()
    assert failure["error"] == "elasticsearch_error"
    outcomes = {task["name"]: task["outcome"] for task in failure["trace"]["tasks"]}
    # Cancelled, not timed out: they were stopped when the hits failed, long before the deadline.
    assert outcomes == {"es-hits": "error", **{f"es-{name}": "cancelled" for name in FACETS}}
    header = {
        entry.name: entry.outcome
        for entry in parse_timing_entries(response.headers["Server-Timing"])
    }
    assert header["es-facet-tags"] == "cancelled"


async def test_timeout_parameter_shortens_but_never_lengthens(
    build: str, pausable_node: PausableNode, paused_catalogue: str
) -> None:
    settings = node_settings(pausable_node, paused_catalogue, search_deadline=2.0)
    async with api_client(build, settings) as client:
        assert (await client.get(f"{SEARCH}?q=the")).status_code == 200
        pausable_node.pause()
        shorter = await client.get(f"{SEARCH}?q=the&timeout=300")
        longer = await client.get(f"{SEARCH}?q=the&timeout=60000")
    for response, deadline_ms in ((shorter, 300), (longer, 2000)):
        assert response.status_code == 504
        failure = response.json()
        assert failure["error"] == "deadline_exceeded"
        assert failure["message"] == f"no answer within the deadline of {deadline_ms} ms"


async def test_client_disconnect_cancels_every_elasticsearch_call(
    build: str, pausable_node: PausableNode, paused_catalogue: str
) -> None:
    settings = node_settings(pausable_node, paused_catalogue, search_deadline=30.0)
    observed = Observed()
    transport = observed_transport(settings, build, observed)
    async with api_client(build, settings, transport=transport) as http:
        assert (await http.get("/")).status_code == 200
        pausable_node.pause()

        async def search_then_hang_up() -> None:
            with trio.move_on_after(30):
                await http.get(SEARCH, params={"q": "the"}, timeout=30)

        async with trio.open_nursery() as clients:
            clients.start_soon(search_then_hang_up)
            with trio.fail_after(10):
                while observed.searches_in_flight() < 4:
                    await trio.sleep(0.01)
            # The client gives up: its connection closes with four calls in flight.
            clients.cancel_scope.cancel()
        with trio.fail_after(5):  # far inside the 30 s deadline the calls would otherwise wait for
            while observed.searches_in_flight():
                await trio.sleep(0.01)
    assert [call.outcome for call in observed.searches()] == ["cancelled"] * 4


async def test_misspelt_query_gets_suggestions(client: httpx.AsyncClient) -> None:
    body = (await client.get(f"{SEARCH}?q=hobit")).json()
    assert body["count"] == 0
    assert "hobbit" in body["suggestions"]


async def test_good_query_gets_no_suggestions(client: httpx.AsyncClient) -> None:
    thin = (await client.get(f"{SEARCH}?q=hobbit&trace=1")).json()
    assert thin["count"] == 1
    assert thin["suggestions"] == []
    # Few hits, so the suggestion branch did run, and found nothing to correct.
    assert "es-suggest" in {task["name"] for task in thin["trace"]["tasks"]}
    plenty = (await client.get(f"{SEARCH}?q=the&trace=1")).json()
    assert plenty["count"] >= 3
    assert "es-suggest" not in {task["name"] for task in plenty["trace"]["tasks"]}


async def test_a_long_search_asks_the_suggester_nothing(client: httpx.AsyncClient) -> None:
    # 450 characters of words nothing in the catalogue matches: few hits, but no typo to fix.
    noise = " ".join(["hobit", *["zqxv"] * 89])
    body = (await client.get(SEARCH, params={"q": noise, "trace": "1"})).json()
    assert body["count"] == 0
    assert body["suggestions"] == []
    assert "es-suggest" not in {task["name"] for task in body["trace"]["tasks"]}


async def test_trace_is_well_formed_and_nests_inside_the_request(
    client: httpx.AsyncClient, es_url: str
) -> None:
    response = await client.get(f"{SEARCH}?q=potter&trace=1")
    trace = response.json()["trace"]
    names = [task["name"] for task in trace["tasks"]]
    assert {"es-hits", *(f"es-{name}" for name in FACETS)} <= set(names)
    assert len(names) == len(set(names))
    for task in trace["tasks"]:
        assert 0 <= task["start_ms"] <= task["end_ms"] <= trace["end_ms"]
        assert task["node"] == es_url
        assert task["outcome"] == "ok"
    total = next(
        e for e in parse_timing_entries(response.headers["Server-Timing"]) if e.name == "total"
    )
    assert trace["end_ms"] <= total.duration_ms + 0.1


async def test_trace_can_be_turned_off(build: str, api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"allow_trace": False})
    async with api_client(build, settings) as client:
        response = await client.get(f"{SEARCH}?trace=1")
    assert response.status_code == 422
    assert response.json()["details"][0] == {
        "field": "trace",
        "rule": "disabled",
        "message": "tracing is turned off on this service",
    }


async def test_an_engine_down_at_start_is_named_once_it_answers(
    pausable_node: PausableNode, paused_catalogue: str
) -> None:
    await pausable_node.stop()
    try:
        app = create_app(node_settings(pausable_node, paused_catalogue))
        async with app.test_app() as test_app:
            client = test_app.test_client()
            not_ready = await client.get("/readyz")
            await pausable_node.start()
            ready = await client.get("/readyz")
    finally:
        await pausable_node.start()
    assert not_ready.status_code == 503
    assert ready.status_code == 200
    engine = {"name": TEST_ENGINE.name, "version": TEST_ENGINE_VERSION}
    assert (await ready.get_json())["engine"] == engine


async def test_every_node_down_then_back(
    pausable_node: PausableNode, paused_catalogue: str
) -> None:
    app = create_app(node_settings(pausable_node, paused_catalogue, search_deadline=2.0))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await pausable_node.stop()
        try:
            down = await client.get(f"{SEARCH}?q=the")
            not_ready = await client.get("/readyz")
        finally:
            await pausable_node.start()
        # The node answers again; its shards may take a moment more. The service,
        # having marked it dead, must try it again rather than wait out a backoff
        # that grows with each failure: poll, and count what it answered meanwhile.
        meanwhile: list[str] = []
        with trio.move_on_after(30):
            while (status := (response := await client.get(f"{SEARCH}?q=the")).status_code) != 200:
                meanwhile.append((await response.get_json())["error"])
                await trio.sleep(0.1)
    assert down.status_code == 503
    assert (await down.get_json())["error"] == "elasticsearch_unavailable"
    assert not_ready.status_code == 503
    assert status == 200, meanwhile
    # Whatever the shards needed, the node itself was never skipped once it was back.
    assert "elasticsearch_unavailable" not in meanwhile, meanwhile
