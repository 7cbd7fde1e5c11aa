"""What an anonymous client is told when Elasticsearch fails: one fixed sentence per kind.

Elasticsearch's own words name indices, nodes, fields and parsers; a node's
address names the network behind the service. Those go to the log line that
carries the request id, and the answer carries that id, so an operator can
find the whole story. Each test makes a real failure on a real Elasticsearch
(or a real closed port) and reads both the answer and the log line.
"""

from __future__ import annotations

import httpx
import pytest
import trio
from log_lines import Lines
from servers import api_client

from trio_books.core.mapping import index_body
from trio_books.es.client import Elasticsearch
from trio_books.settings import Settings

SEARCH = "/api/v1/search/"
# What no public answer may carry, whatever failed.
ADDRESSES = ("127.0.0.1", "http://", "https://", "localhost")


async def public_answer(
    client: httpx.AsyncClient, path: str, rid: str, params: dict[str, str] | None = None
) -> tuple[int, dict[str, object], httpx.Response]:
    """Ask *path* with request id *rid*: the status, the body, and the answer itself."""
    answer = await client.get(path, params=params, headers={"X-Request-Id": rid})
    return answer.status_code, answer.json(), answer


def assert_public(answer: httpx.Response, *internals: str) -> None:
    for secret in (*ADDRESSES, *internals):
        assert secret.lower() not in answer.text.lower(), f"{secret!r} in {answer.text}"


async def test_a_502_tells_the_client_a_fixed_sentence_and_the_log_the_rest(
    build: str, es: Elasticsearch, es_url: str, index_name: str, log_lines: Lines
) -> None:
    # A real Elasticsearch error: sorting on a text field is refused (400).
    body = index_body()
    body["mappings"] = {
        **body["mappings"],
        "properties": {**body["mappings"]["properties"], "title_sort": {"type": "text"}},
    }
    await es.create_index(index_name, body)
    settings = Settings(es_urls=[es_url], index=index_name, search_deadline=30.0)
    async with api_client(build, settings) as client:
        status, body, failed = await public_answer(client, SEARCH, "public-502", {"sort": "title"})
    assert (status, body) == (
        502,
        {
            "error": "elasticsearch_error",
            "message": "Elasticsearch could not carry out the search",
            "request_id": "public-502",
        },
    )
    assert_public(failed, index_name, "title_sort", "illegal_argument", "fielddata", "400")
    told = " ".join(log_lines.of("public-502"))
    assert "title_sort" in told, log_lines.lines
    assert "400" in told


async def test_a_missing_index_is_not_named_to_the_client(
    build: str, es_url: str, index_name: str, log_lines: Lines
) -> None:
    settings = Settings(es_urls=[es_url], index=index_name, search_deadline=30.0)
    async with api_client(build, settings) as client:
        status, body, missing = await public_answer(client, SEARCH, "public-503-index")
    assert (status, body) == (
        503,
        {
            "error": "index_missing",
            "message": "the book catalogue is not loaded yet",
            "request_id": "public-503-index",
        },
    )
    assert_public(missing, index_name)
    assert any(index_name in line for line in log_lines.of("public-503-index")), log_lines.lines


@pytest.fixture
async def closed_port() -> int:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("path", [SEARCH, "/api/v1/books/1", "/readyz"])
async def test_an_unreachable_node_is_not_named_to_the_client(
    build: str, closed_port: int, path: str, log_lines: Lines
) -> None:
    settings = Settings(es_urls=[f"http://127.0.0.1:{closed_port}"], index="books")
    async with api_client(build, settings) as client:
        status, body, down = await public_answer(client, path, "public-503-down")
    assert (status, body) == (
        503,
        {
            "error": "elasticsearch_unavailable",
            "message": "Elasticsearch is unreachable",
            "request_id": "public-503-down",
        },
    )
    assert_public(down, str(closed_port))
    told = " ".join(log_lines.of("public-503-down"))
    assert f"127.0.0.1:{closed_port}" in told, log_lines.lines


@pytest.fixture
async def language_as_text(es: Elasticsearch, index_name: str) -> str:
    """An index whose language code is text: the language facet's terms aggregation fails, alone."""
    body = index_body()
    body["mappings"] = {
        **body["mappings"],
        "properties": {**body["mappings"]["properties"], "language_code": {"type": "text"}},
    }
    await es.create_index(index_name, body)
    return index_name


async def test_a_partial_answer_gives_the_failed_branch_a_fixed_reason(
    build: str, es_url: str, language_as_text: str, log_lines: Lines
) -> None:
    settings = Settings(es_urls=[es_url], index=language_as_text, search_deadline=30.0)
    async with api_client(build, settings) as client:
        partial = await client.get(SEARCH, headers={"X-Request-Id": "public-partial"})
    assert partial.status_code == 200, partial.text
    errors = partial.json()["errors"]
    assert errors == [
        {"branch": "facet-languages", "reason": "Elasticsearch could not carry out the search"}
    ]
    assert_public(partial, language_as_text, "language_code", "fielddata", "400")
    told = " ".join(log_lines.of("public-partial"))
    assert "facet-languages" in told, log_lines.lines
    assert "language_code" in told
