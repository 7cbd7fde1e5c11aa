"""``GET /metrics`` of a serving app, read by hand and by a real Prometheus.

Each test serves the test catalogue over HTTP (both builds), sends a known set
of requests, and reads back figures that only real work could have produced:
the request counts it sent, an Elasticsearch call per branch per search on the
real node, the gate, the pool and the node's health.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from processes import ANNOUNCED, WORKER_RUNNING, Output
from prometheus_client.parser import text_string_to_metric_families
from prometheus_server import JOB, PrometheusInfo, serve_prometheus
from servers import api_client, serving

from trio_books.api.service import SUGGEST_BRANCH
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
    assert one(found, "trio_books_hedge_delay_seconds") > 0
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


def free_ports(count: int) -> int:
    """The first of *count* consecutive loopback ports that are free now."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            start: int = first.getsockname()[1]
            others = [socket.socket() for _ in range(count - 1)]
            try:
                for offset, other in enumerate(others, 1):
                    other.bind(("127.0.0.1", start + offset))
                return start
            except OSError:
                continue
            finally:
                for other in others:
                    other.close()
    raise RuntimeError(f"no {count} consecutive free ports")


async def test_on_a_port_of_their_own_the_metrics_leave_the_public_port(
    build: str, api_settings: Settings
) -> None:
    port = free_ports(1)
    settings = api_settings.model_copy(update={"metrics_port": port})
    async with api_client(build, settings) as http:
        for text in SEARCHES:
            assert (await http.get(SEARCH_ROUTE, params={"q": text})).status_code == 200
        public = await http.get("/metrics")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as private:
            found = await scrape(private)
            api = await private.get(SEARCH_ROUTE, params={"q": "dune"})
            health = await private.get("/healthz")
            posted = await private.post("/metrics")
    assert public.status_code == 404
    count = "trio_books_request_duration_seconds_count"
    assert one(found, count, route=SEARCH_ROUTE, method="GET", status="200") == len(SEARCHES)
    # Nothing of the API on the metrics port.
    assert (api.status_code, health.status_code) == (404, 404)
    assert api.json()["error"] == "not_found"
    assert posted.status_code == 405
    assert posted.headers["allow"] == "GET, HEAD"


async def wait_for_total(prometheus: PrometheusInfo, expression: str, total: float) -> float:
    """*expression*'s value once it reaches *total* (Prometheus scrapes every 500 ms)."""
    with trio.fail_after(30):
        while True:
            seen = await prometheus.query(expression)
            if seen and float(seen[0]["value"][1]) >= total:
                return float(seen[0]["value"][1])
            await trio.sleep(0.25)


@pytest.mark.needs("prometheus")
@pytest.mark.parametrize("build", ["trio", "asyncio"])
async def test_with_workers_each_serves_its_own_metrics_port_and_prometheus_sums_them(
    build: str, es_url: str, catalogue_index: str, tmp_path: Path
) -> None:
    first = free_ports(2)
    env = {
        **os.environ,
        "TRIO_BOOKS_ES_URLS": es_url,
        "TRIO_BOOKS_INDEX": catalogue_index,
        "TRIO_BOOKS_METRICS_PORT": str(first),
    }
    command = [sys.executable, "-m", "trio_books", "serve", "--build", build, "--workers", "2"]
    process = await trio.lowlevel.open_process(
        [*command, "--port", "0"], env=env, stderr=subprocess.PIPE, start_new_session=True
    )
    assert process.stderr is not None
    output = Output()
    targets = [f"127.0.0.1:{first}", f"127.0.0.1:{first + 1}"]
    searches = 8
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(output.read, process.stderr)
            with trio.fail_after(60):
                url = (await output.wait_for(ANNOUNCED)).group(1).decode()
                await output.wait_for(WORKER_RUNNING, count=4)  # public and metrics, twice
            prometheus = await nursery.start(serve_prometheus, targets, tmp_path / "prometheus")
            # A connection per search, so both workers take some.
            for number in range(searches):
                async with httpx.AsyncClient(base_url=url) as http:
                    answer = await http.get(SEARCH_ROUTE, params={"q": SEARCHES[number % 3]})
                    assert answer.status_code == 200
            total = await wait_for_total(
                prometheus,
                f'sum(trio_books_request_duration_seconds_count{{route="{SEARCH_ROUTE}"}})',
                searches,
            )
            up = await prometheus.query(f'up{{job="{JOB}"}}')
            each = await prometheus.query(f'trio_books_gate_admitted_total{{job="{JOB}"}}')
            nursery.cancel_scope.cancel()
        os.killpg(process.pid, signal.SIGTERM)
        with trio.fail_after(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        await process.stderr.aclose()
    assert total == searches
    assert sorted((item["metric"]["instance"], item["value"][1]) for item in up) == [
        (target, "1") for target in targets
    ]
    # Each worker counts its own: two series, which together make every search.
    admitted = {item["metric"]["instance"]: float(item["value"][1]) for item in each}
    assert sorted(admitted) == targets
    assert sum(admitted.values()) == searches


@pytest.mark.needs("prometheus")
async def test_a_real_prometheus_scrapes_the_service(
    api_settings: Settings, tmp_path: Path
) -> None:
    async with serving("trio", api_settings) as url, trio.open_nursery() as nursery:
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
    # Each search's four branches (a short answer adds a fifth, the suggestions).
    per_branch = {item["metric"]["branch"]: float(item["value"][1]) for item in branches}
    assert {branch: per_branch.get(branch) for branch in BRANCHES} == {
        branch: len(SEARCHES) for branch in BRANCHES
    }
    assert set(per_branch) - BRANCHES <= {SUGGEST_BRANCH}
