"""``GET /metrics`` of a serving app, read by hand and by a real Prometheus.

Each test serves the test catalogue over HTTP (both builds), sends a known set
of requests, and reads back figures that only real work could have produced:
the request counts it sent, an Elasticsearch call per branch per search on the
real node, the gate, the pool and the node's health.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families
from prometheus_server import JOB, serve_prometheus
from servers import api_client, serving

from trio_books.core.query import FACETS, HITS_BRANCH, facet_branch
from trio_books.settings import Settings

pytestmark = pytest.mark.elasticsearch

SEARCH_ROUTE = "/api/v1/search/"
BRANCHES = {HITS_BRANCH, *(facet_branch(facet) for facet in FACETS)}
SEARCHES = ("dune", "hunger games", "tolkien")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient) -> Samples:
    answer = await http.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def one(found: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in found, f"{name}{labels} not in the scrape"
    return found[key]


def labelled(found: Samples, name: str, label: str) -> dict[str, float]:
    """The samples of *name*, by their *label*, summed over the other labels."""
    sums: dict[str, float] = {}
    for (sample, labels), value in found.items():
        if sample == name:
            key = dict(labels)[label]
            sums[key] = sums.get(key, 0) + value
    return sums


async def test_a_scrape_shows_the_requests_calls_gate_pool_and_node_of_real_searches(
    build: str, api_settings: Settings, es_url: str
) -> None:
    async with api_client(build, api_settings) as http:
        for text in SEARCHES:
            assert (await http.get(SEARCH_ROUTE, params={"q": text})).status_code == 200
        assert (await http.get("/api/v1/books/999999999")).status_code == 404
        assert (await http.get("/no/such/path/42")).status_code == 404
        found = await scrape(http)
        again = await scrape(http)

    count = "trio_books_request_duration_seconds_count"
    assert one(found, count, route=SEARCH_ROUTE, method="GET", status="200") == len(SEARCHES)
    book_route = "/api/v1/books/<int:book_id>"
    assert one(found, count, route=book_route, method="GET", status="404") == 1
    # Any path no route has is one series, never one per path.
    assert one(found, count, route="unmatched", method="GET", status="404") == 1
    # Every branch of every search called the real node, and answered.
    calls = "trio_books_es_call_duration_seconds_count"
    for branch in BRANCHES:
        assert one(found, calls, branch=branch, node=es_url, outcome="ok") == len(SEARCHES)
    assert one(found, "trio_books_gate_admitted_total") == len(SEARCHES) + 1
    assert one(found, "trio_books_gate_in_flight") == 0
    assert one(found, "trio_books_gate_capacity") == api_settings.max_in_flight
    assert one(found, "trio_books_serving") == 1
    assert one(found, "trio_books_es_node_alive", node=es_url) == 1
    assert one(found, "trio_books_es_node_failures", node=es_url) == 0
    assert one(found, "trio_books_es_pool_opened_total", node=es_url) >= 1
    assert one(found, "trio_books_es_pool_in_use", node=es_url) == 0
    assert one(found, "trio_books_hits_p95_seconds") > 0
    assert one(found, "trio_books_requests_begun_total") >= len(SEARCHES) + 2
    # A scrape asks Elasticsearch nothing: the pool counted no call between two of them.
    for figure in ("opened", "reused"):
        name = f"trio_books_es_pool_{figure}_total"
        assert one(again, name, node=es_url) == one(found, name, node=es_url)
    # The first scrape itself is counted by the second, under its own route.
    assert one(again, count, route="/metrics", method="GET", status="200") == 1


async def test_metrics_off_is_not_found(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"metrics": False})
    async with api_client("trio", settings) as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


async def test_a_real_prometheus_scrapes_the_service(
    api_settings: Settings, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery, serving("trio", api_settings) as url:
        target = url.removeprefix("http://")
        prometheus = await nursery.start(serve_prometheus, [target], tmp_path / "prometheus")
        async with httpx.AsyncClient(base_url=url) as http:
            for text in SEARCHES:
                assert (await http.get(SEARCH_ROUTE, params={"q": text})).status_code == 200
        searches = (
            f'trio_books_request_duration_seconds_count{{job="{JOB}",route="{SEARCH_ROUTE}",'
            'method="GET",status="200"}'
        )
        # Scraped every 500 ms: wait (bounded) for a scrape taken after the searches.
        with trio.fail_after(30):
            while True:
                seen = await prometheus.query(searches)
                if seen and float(seen[0]["value"][1]) >= len(SEARCHES):
                    break
                await trio.sleep(0.25)
        up = await prometheus.query(f'up{{job="{JOB}"}}')
        branches = await prometheus.query(
            "sum by (branch) (trio_books_es_call_duration_seconds_count)"
        )
        nursery.cancel_scope.cancel()
    assert float(seen[0]["value"][1]) == len(SEARCHES)
    assert [(item["metric"]["instance"], item["value"][1]) for item in up] == [(target, "1")]
    assert {item["metric"]["branch"]: float(item["value"][1]) for item in branches} == {
        branch: len(SEARCHES) for branch in BRANCHES
    }
