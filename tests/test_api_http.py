"""HTTP around the search, for both builds: OpenAPI, CORS, timing headers, the concurrent fan-out, the serve command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
from observed import Observed, observed_transport
from servers import api_client

from trio_books.core.timing import parse_server_timing, parse_timing_entries
from trio_books.settings import Settings

Client = httpx.AsyncClient
SEARCH = "/api/v1/search/"
BRANCHES = ["es-hits", "es-facet-tags", "es-facet-years", "es-facet-languages"]


# ---------------------------------------------------------------- OpenAPI


async def test_openapi_documents_every_route(client: Client) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert {
        "/",
        "/healthz",
        "/readyz",
        "/api/v1/search/",
        "/api/v1/books/{book_id}",
        "/api/v1/books/{book_id}/similar",
        "/api/v1/complete",
    } <= set(spec["paths"])
    search = spec["paths"]["/api/v1/search/"]["get"]
    documented = {parameter["name"] for parameter in search["parameters"]}
    assert documented == {
        "q",
        "tags",
        "tags_mode",
        "year",
        "year_from",
        "year_to",
        "language",
        "size",
        "page",
        "sort",
        "timeout",
        "trace",
        "highlight",
        "cursor",
    }
    assert {"200", "422", "502", "503", "504"} <= set(search["responses"])
    complete = spec["paths"]["/api/v1/complete"]["get"]
    assert {parameter["name"] for parameter in complete["parameters"]} == {"prefix", "size"}
    similar = spec["paths"]["/api/v1/books/{book_id}/similar"]["get"]
    assert {"200", "404", "422"} <= set(similar["responses"])
    assert {"200", "404"} <= set(spec["paths"]["/api/v1/books/{book_id}"]["get"]["responses"])


async def test_interactive_docs_are_served(client: Client) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in response.text


# ---------------------------------------------------------------- headers


async def test_timing_headers_name_every_branch(client: Client) -> None:
    response = await client.get(f"{SEARCH}?q=dune")
    assert float(response.headers["X-Process-Time"]) > 0
    timings = parse_server_timing(response.headers["Server-Timing"])
    # "dune" finds one book, so a suggestion branch joins the four.
    assert set(timings) == {*BRANCHES, "es-suggest", "total"}
    assert all(value >= 0 for value in timings.values())


async def test_timing_header_shows_the_branches_overlapping(
    build: str, api_settings: Settings
) -> None:
    # Each call takes BRANCH_DELAY more on the production path: under a CPU hog the
    # branches took 3 ms each, less than starting the four, and the first had ended
    # before the last began. The header's claim is overlap, not a race against that.
    observed = Observed(delay=BRANCH_DELAY)
    transport = observed_transport(api_settings, build, observed)
    async with api_client(build, api_settings, transport=transport) as client:
        response = await client.get(f"{SEARCH}?q=war")
    entries = {e.name: e for e in parse_timing_entries(response.headers["Server-Timing"])}
    spans = [(entries[name].start_ms, entries[name].duration_ms) for name in BRANCHES]
    starts = [start for start, _ in spans if start is not None]
    assert len(starts) == len(BRANCHES)
    assert all(0 <= start <= entries["total"].duration_ms for start in starts)
    # The page draws bars at [start, start + dur]: every branch began before any ended.
    assert max(starts) < min(start + duration for start, duration in spans if start is not None)


async def test_routes_without_elasticsearch_calls_report_only_total(client: Client) -> None:
    response = await client.get("/")
    assert list(parse_server_timing(response.headers["Server-Timing"])) == ["total"]


# ---------------------------------------------------------------- CORS


@pytest.fixture
async def cors_client(
    build: str, api_settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[Client]:
    settings = api_settings.model_copy(update={"cors_origins": request.param})
    async with api_client(build, settings) as http:
        yield http


def preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "GET"}


@pytest.mark.parametrize("cors_client", [["https://books.example"]], indirect=True)
async def test_cors_preflight_allowed_for_a_listed_origin(cors_client: Client) -> None:
    response = await cors_client.options(SEARCH, headers=preflight("https://books.example"))
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://books.example"
    assert "GET" in response.headers["Access-Control-Allow-Methods"]
    actual = await cors_client.get(f"{SEARCH}?q=dune", headers={"Origin": "https://books.example"})
    assert actual.headers["Access-Control-Allow-Origin"] == "https://books.example"
    assert "Server-Timing" in actual.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize("cors_client", [["https://books.example"], []], indirect=True)
async def test_cors_preflight_refused_for_other_origins(cors_client: Client) -> None:
    response = await cors_client.options(SEARCH, headers=preflight("https://evil.example"))
    assert response.status_code == 403
    assert response.json()["error"] == "cors_refused"
    assert "Access-Control-Allow-Origin" not in response.headers
    actual = await cors_client.get(SEARCH, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in actual.headers


@pytest.mark.parametrize("cors_client", [["*"]], indirect=True)
async def test_cors_wildcard_allows_any_origin_without_credentials(cors_client: Client) -> None:
    response = await cors_client.options(SEARCH, headers=preflight("https://anyone.example"))
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


# ---------------------------------------------------------------- the fan-out is concurrent


# Added to every Elasticsearch call on the production path, so that the overlap
# is measurable on any machine: four calls one after another take 4 × this.
BRANCH_DELAY = 0.1


async def test_search_branches_overlap_in_time(build: str, api_settings: Settings) -> None:
    observed = Observed(delay=BRANCH_DELAY)
    transport = observed_transport(api_settings, build, observed)
    async with api_client(build, api_settings, transport=transport) as client:
        response = await client.get(f"{SEARCH}?q=the&tags=classics")
    assert response.status_code == 200
    searches = observed.searches()
    assert [call.status for call in searches] == [200] * 4
    assert observed.through_httpx == 0  # every call took production's path
    # Every branch started before any branch finished: they were in flight together.
    ended = [call.ended for call in searches if call.ended is not None]
    assert max(call.started for call in searches) < min(ended)
    # Side by side, the four calls' time adds up to well over the request's own;
    # one after another, it would add up to less.
    total_ms = parse_server_timing(response.headers["Server-Timing"])["total"]
    calls_ms = [(end - call.started) * 1000 for call, end in zip(searches, ended, strict=True)]
    assert sum(calls_ms) > 1.5 * total_ms, (calls_ms, total_ms)
    # Each call carries the time left as Elasticsearch's own timeout, within the deadline.
    for call in searches:
        timeout = str(call.body["timeout"])
        assert timeout.endswith("ms")
        assert 0 < int(timeout.removesuffix("ms")) <= api_settings.search_deadline * 1000


# ---------------------------------------------------------------- end to end


ANNOUNCED = re.compile(rb"serving on (http://\S+)")


async def announced_url(stderr: trio.abc.ReceiveStream) -> str:
    """The address a ``serve`` process announces once it is bound."""
    seen = b""
    while (found := ANNOUNCED.search(seen)) is None:
        chunk = await stderr.receive_some()
        if not chunk:
            raise AssertionError(f"serve exited without announcing an address: {seen!r}")
        seen += chunk
    return found.group(1).decode()


async def test_serve_command_end_to_end(build: str, es_url: str, api_settings: Settings) -> None:
    env = {**os.environ, "TRIO_BOOKS_ES_URLS": es_url, "TRIO_BOOKS_INDEX": api_settings.index}
    command = [sys.executable, "-m", "trio_books", "serve", "--build", build, "--port", "0"]
    process = await trio.lowlevel.open_process(command, env=env, stderr=subprocess.PIPE)
    assert process.stderr is not None
    try:
        url = await announced_url(process.stderr)
        async with httpx.AsyncClient(base_url=url) as http:
            ping = await http.get("/")
            found = await http.get(SEARCH, params={"q": "Homer", "sort": "year"})
            missing = await http.get("/api/v1/books/424242")
        # A stop signal shuts the server down gracefully, with exit status 0.
        process.send_signal(signal.SIGTERM)
        assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.stderr.aclose()
    assert ping.json() == {"message": "Ping"}
    assert found.status_code == 200
    assert [book["book_id"] for book in found.json()["results"]] == [7, 6]
    assert set(parse_server_timing(found.headers["server-timing"])) >= {*BRANCHES, "total"}
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
