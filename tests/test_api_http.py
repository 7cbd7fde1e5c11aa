"""HTTP around the search: OpenAPI, CORS, timing headers, the concurrent fan-out, a real Hypercorn."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
from quart.typing import TestClientProtocol as Client

from trio_books.core.timing import parse_server_timing, parse_timing_entries
from trio_books.serving import hypercorn_config
from trio_books.settings import Settings
from trio_books.trio.app import create_app
from trio_books.trio.serve import serve_trio

SEARCH = "/api/v1/search/"
BRANCHES = ["es-hits", "es-facet-tags", "es-facet-years", "es-facet-languages"]


# ---------------------------------------------------------------- OpenAPI


async def test_openapi_documents_every_route(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    assert spec["openapi"].startswith("3.1")
    assert {"/", "/healthz", "/readyz", "/api/v1/search/", "/api/v1/books/{book_id}"} <= set(
        spec["paths"]
    )
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
    }
    assert {"200", "422", "502", "503", "504"} <= set(search["responses"])
    assert {"200", "404"} <= set(spec["paths"]["/api/v1/books/{book_id}"]["get"]["responses"])


async def test_interactive_docs_are_served(client: Client) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in await response.get_data(as_text=True)


# ---------------------------------------------------------------- headers


async def test_timing_headers_name_every_branch(client: Client) -> None:
    response = await client.get(f"{SEARCH}?q=dune")
    assert float(response.headers["X-Process-Time"]) > 0
    timings = parse_server_timing(response.headers["Server-Timing"])
    # "dune" finds one book, so a suggestion branch joins the four.
    assert set(timings) == {*BRANCHES, "es-suggest", "total"}
    assert all(value >= 0 for value in timings.values())
    # Branches run side by side, so none takes longer than the whole request.
    assert max(timings[name] for name in BRANCHES) <= timings["total"]


async def test_timing_header_shows_the_branches_overlapping(client: Client) -> None:
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
    api_settings: Settings, request: pytest.FixtureRequest
) -> AsyncIterator[Client]:
    settings = api_settings.model_copy(update={"cors_origins": request.param})
    async with create_app(settings).test_app() as test_app:
        yield test_app.test_client()


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
    assert (await response.get_json())["error"] == "cors_refused"
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


class RecordingTransport(httpx.AsyncBaseTransport):
    """The real transport, noting when each Elasticsearch call starts and ends (body read)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.calls: list[tuple[str, float, float]] = []
        self.bodies: list[dict[str, object]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = trio.current_time()
        if request.content:
            self.bodies.append(json.loads(request.content))
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.calls.append((request.url.path, started, trio.current_time()))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_search_branches_overlap_in_time(api_settings: Settings) -> None:
    transport = RecordingTransport()
    async with create_app(api_settings, transport=transport).test_app() as test_app:
        response = await test_app.test_client().get(f"{SEARCH}?q=the&tags=classics")
    assert response.status_code == 200
    searches = [call for call in transport.calls if call[0].endswith("/_search")]
    assert len(searches) == 4
    # Every branch started before any branch finished: they were in flight together.
    assert max(start for _, start, _ in searches) < min(end for _, _, end in searches)
    # Each call carries the time left as Elasticsearch's own timeout, within the deadline.
    for body in transport.bodies:
        timeout = str(body["timeout"])
        assert timeout.endswith("ms")
        assert 0 < int(timeout.removesuffix("ms")) <= api_settings.search_deadline * 1000


# ---------------------------------------------------------------- end to end


async def test_end_to_end_through_hypercorn(nursery: trio.Nursery, api_settings: Settings) -> None:
    config = hypercorn_config(api_settings, host="127.0.0.1", port=0)
    binds = await nursery.start(
        functools.partial(serve_trio, api_settings, config, stop_on_signals=False)
    )
    async with httpx.AsyncClient(base_url=binds[0]) as http:
        ping = await http.get("/")
        found = await http.get(SEARCH, params={"q": "Homer", "sort": "year"})
        missing = await http.get("/api/v1/books/424242")
    assert ping.json() == {"message": "Ping"}
    assert found.status_code == 200
    assert [book["book_id"] for book in found.json()["results"]] == [7, 6]
    assert set(parse_server_timing(found.headers["server-timing"])) >= {*BRANCHES, "total"}
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
