"""Hedging shown to work end to end: two real nodes, one paused, searches over HTTP.

With the first node frozen (SIGSTOP: it takes the request and answers
nothing), a hits call sent there is hedged on the other node after the
observed p95, the hedge answers, and the first attempt is cancelled at once:
its pool slot is free again while the paused node still holds the request.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
from catalogue import BOOKS
from conftest import PausableNode

from trio_books.api.routes import SERVICE_KEY
from trio_books.api.service import HEDGE_DELAY_BEFORE_P95
from trio_books.core.bulk import bulk_body
from trio_books.core.mapping import index_body
from trio_books.es.client import Elasticsearch
from trio_books.serving import hypercorn_config
from trio_books.settings import Settings
from trio_books.trio.app import create_app
from trio_books.trio.serve import serve_app

pytestmark = pytest.mark.elasticsearch

SEARCH = "/api/v1/search/"
WARM_UP = 30
# Each try sends the hits call to one node of two; facet calls that meet the
# paused node time out at the deadline and rest it, so a try waits for it.
TRIES = 8


def host_port(url: str) -> str:
    return url.split("//", 1)[1]


async def test_a_hits_call_on_a_paused_node_is_hedged_on_the_other_and_the_loser_let_go(
    nursery: trio.Nursery,
    es: Elasticsearch,
    es_url: str,
    pausable_node: PausableNode,
    paused_catalogue: str,
) -> None:
    # The same catalogue under the same name on the session's node.
    await es.create_index(paused_catalogue, index_body())
    assert (await es.bulk(bulk_body(paused_catalogue, BOOKS), refresh=True))["errors"] is False
    # No hedge_delay_ms: the delay is the observed p95 of the hits calls.
    settings = Settings(
        es_urls=[pausable_node.url, es_url],
        index=paused_catalogue,
        facet_size=100,
        search_deadline=2.0,
        hedge_hits=True,
    )
    app = create_app(settings)
    config = hypercorn_config(settings, host="127.0.0.1", port=0)
    binds = await nursery.start(serve_app, app, settings, config)
    async with httpx.AsyncClient(base_url=binds[0], timeout=30) as http:
        for _ in range(WARM_UP):
            assert (await http.get(SEARCH, params={"q": "the"})).status_code == 200
        service = app.extensions[SERVICE_KEY]
        transport = app.extensions["trio_books.transport"]
        assert service.hits_latency.value is not None  # a p95 observed, not the default
        delay = service.hedge_delay()
        assert delay != HEDGE_DELAY_BEFORE_P95
        pausable_node.pause()
        tasks: dict[str, Any] = {}
        tried: list[list[tuple[str, str | None, str]]] = []
        ring = service.es.nodes
        for _ in range(TRIES):
            # A search's calls take the ring's next places in turn, the hits
            # call's first attempt last (it starts inside the hedge's nursery,
            # a scheduler step after the facets): with two nodes it would land
            # on the same one every time. Each try starts one place further on.
            ring._next = (ring._next + 1) % len(ring.nodes)
            # Wait out the paused node's rest, if a try put it there: a hits
            # call must be able to start on it.
            with trio.fail_after(30):
                while not all(node.alive(trio.current_time()) for node in service.es.nodes.nodes):
                    await trio.sleep(0.05)
            # Read just before: each answered hits call moves the p95.
            delay = service.hedge_delay()
            response = await http.get(SEARCH, params={"q": "the", "trace": "1"})
            assert response.status_code == 200, response.text
            tasks = {task["name"]: task for task in response.json()["trace"]["tasks"]}
            tried.append([(t["name"], t["node"], t["outcome"]) for t in tasks.values()])
            if "es-hits#hedge" in tasks:
                break
        else:
            pytest.fail(f"no hits call went to the paused node first in {TRIES} tries: {tried}")
        paused_pool = host_port(pausable_node.url)
        # The loser's slot is released at once, though the paused node never answers.
        with trio.fail_after(5):
            while transport.stats()[paused_pool].in_use:
                await trio.sleep(0.01)
        pausable_node.resume()
    first, hedge = tasks["es-hits#first"], tasks["es-hits#hedge"]
    assert (first["outcome"], hedge["outcome"]) == ("lost a hedge", "ok")
    assert host_port(pausable_node.url) in first["node"]
    assert host_port(es_url) in hedge["node"]
    assert tasks["es-hits"]["outcome"] == "ok"
    # Sent after the observed p95, not before it.
    # The hedge's timer starts with the hits branch, before the first attempt's
    # task has run: measured from the branch's start, not the attempt's.
    since = hedge["start_ms"] - tasks["es-hits"]["start_ms"]
    assert since >= delay * 1000 * 0.99, (delay, tasks)
