"""Every error either build gives is JSON that says what went wrong: 422, 404, 405, 502, 503."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from servers import api_client

from trio_books.core.mapping import index_body
from trio_books.es.client import Elasticsearch
from trio_books.settings import Settings

Client = httpx.AsyncClient

SEARCH = "/api/v1/search/"


async def problem(client: Client, url: str, status: int) -> dict[str, Any]:
    response = await client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str)
    assert isinstance(body["message"], str)
    return body


@pytest.mark.parametrize(
    ("query", "field", "rule"),
    [
        ("size=0", "size", "greater_than_equal"),
        ("size=101", "size", "less_than_equal"),
        ("size=ten", "size", "int_parsing"),
        ("page=0", "page", "greater_than_equal"),
        ("page=101&size=100", "page", "result_window"),
        ("page=10001", "page", "result_window"),
        ("sort=newest", "sort", "literal_error"),
        ("tags_mode=some", "tags_mode", "literal_error"),
        ("year=MMVIII", "year", "int_parsing"),
        ("year_from=2000&year_to=1990", "year_to", "year_range"),
        ("tags=", "tags", "empty_tag"),
        ("tags=" + "a" * 65, "tags", "tag_too_long"),
        ("tags=young%20adult", "tags", "tag_slug"),
        ("tags=young--adult", "tags", "tag_slug"),
        ("tags=-adult", "tags", "tag_slug"),
        ("tags=%3Cscript%3E", "tags", "tag_slug"),
        ("tags=classics&tags=a_b", "tags", "tag_slug"),
        ("q=" + "a" * 501, "q", "string_too_long"),
        ("colour=blue", "colour", "extra_forbidden"),
    ],
)
async def test_invalid_parameters_are_422_naming_field_and_rule(
    client: Client, query: str, field: str, rule: str
) -> None:
    body = await problem(client, f"{SEARCH}?{query}", 422)
    assert body["error"] == "invalid_parameter"
    assert {"field": field, "rule": rule} in [
        {"field": d["field"], "rule": d["rule"]} for d in body["details"]
    ]


@pytest.mark.parametrize(
    "tag", ["a" * 64, "young-adult", "%E6%97%A5%E6%9C%AC%E6%96%87%E5%AD%A6", "1984"]
)
async def test_tags_that_are_slugs_are_searched(client: Client, tag: str) -> None:
    response = await client.get(f"{SEARCH}?tags={tag}")
    assert response.status_code == 200, response.text


async def test_several_broken_rules_are_all_reported(client: Client) -> None:
    body = await problem(client, f"{SEARCH}?size=0&sort=newest", 422)
    assert {d["field"] for d in body["details"]} == {"size", "sort"}


async def test_unknown_route_is_404_json(client: Client) -> None:
    body = await problem(client, "/api/v1/nothing-here", 404)
    assert body["error"] == "not_found"


async def test_wrong_method_is_405_json(client: Client) -> None:
    response = await client.post(SEARCH)
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


@pytest.fixture
async def unreachable_client(build: str) -> AsyncIterator[Client]:
    """The app pointed at a port where nothing listens."""
    import trio

    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings = Settings(es_urls=[f"http://127.0.0.1:{closed_port}"], index="books")
    async with api_client(build, settings) as http:
        yield http


@pytest.mark.parametrize("url", [SEARCH + "?q=dune", "/api/v1/books/1", "/readyz"])
async def test_unreachable_elasticsearch_is_503_with_retry_after(
    unreachable_client: Client, url: str
) -> None:
    response = await unreachable_client.get(url)
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "elasticsearch_unavailable"
    assert "unreachable" in body["message"]
    if url != "/readyz":
        assert response.headers["Retry-After"] == "5"


async def test_missing_index_is_503_index_missing(build: str, es_url: str, index_name: str) -> None:
    async with api_client(
        build, Settings(es_urls=[es_url], index=index_name, search_deadline=30.0)
    ) as client:
        response = await client.get(SEARCH)
    assert response.status_code == 503
    assert response.json()["error"] == "index_missing"
    # A loader is probably on its way: come back in a few seconds.
    assert response.headers["Retry-After"] == "5"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_unexpected_elasticsearch_error_is_502(
    build: str, es: Elasticsearch, es_url: str, index_name: str
) -> None:
    # A real Elasticsearch error: an index whose title_sort is a text field
    # cannot be sorted on it, so the hits branch fails while the facets succeed.
    body = index_body()
    body["mappings"] = {
        **body["mappings"],
        "properties": {**body["mappings"]["properties"], "title_sort": {"type": "text"}},
    }
    await es.create_index(index_name, body)
    async with api_client(
        build, Settings(es_urls=[es_url], index=index_name, search_deadline=30.0)
    ) as client:
        failed = await client.get(f"{SEARCH}?sort=title")
        fine = await client.get(f"{SEARCH}?sort=year")
    assert failed.status_code == 502
    failure = failed.json()
    assert failure["error"] == "elasticsearch_error"
    assert failure["message"] == "Elasticsearch could not carry out the search"
    assert fine.status_code == 200
