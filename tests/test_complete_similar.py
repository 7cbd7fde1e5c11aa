"""Search as you type and similar books, on both builds, against the real Elasticsearch.

The reference catalogue (99 books of goodbooks-10k, in ``../shared/data``) is
the one the completion and similarity rules are stated against.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from observed import Observed, observed_transport
from servers import api_client

from trio_books.core.books import Book
from trio_books.core.bulk import bulk_body
from trio_books.core.mapping import index_body
from trio_books.core.timing import parse_server_timing
from trio_books.es.client import Elasticsearch
from trio_books.settings import Settings

Client = httpx.AsyncClient
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-books-99.json"
HUNGER_GAMES = {1, 17, 20}


@pytest.fixture
async def reference_index(es: Elasticsearch, index_name: str) -> str:
    books = [Book.model_validate(record) for record in json.loads(REFERENCE.read_text())]
    await es.create_index(index_name, index_body())
    result = await es.bulk(bulk_body(index_name, books), refresh=True)
    assert result["errors"] is False
    return index_name


@pytest.fixture
async def reference(build: str, es_url: str, reference_index: str) -> AsyncIterator[Client]:
    # Generous deadlines: a loaded CI machine; the deadline rules have tests of their own.
    settings = Settings(
        es_urls=[es_url], index=reference_index, search_deadline=30.0, complete_deadline=30.0
    )
    async with api_client(build, settings) as client:
        yield client


async def complete(client: Client, prefix: str, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/complete?" + urlencode({"prefix": prefix, **params}))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert (body["partial"], body["errors"]) == (False, [])
    return body


def title_ids(body: dict[str, Any]) -> list[int]:
    return [title["book_id"] for title in body["titles"]]


def author_names(body: dict[str, Any]) -> list[str]:
    return [author["name"] for author in body["authors"]]


# ---------------------------------------------------------------- completion


async def test_hun_completes_the_hunger_games_books(reference: Client) -> None:
    body = await complete(reference, "hun")
    assert set(title_ids(body)) >= HUNGER_GAMES, body
    assert len(title_ids(body)) == len(set(title_ids(body)))
    by_id = {title["book_id"]: title["title"] for title in body["titles"]}
    assert by_id[17] == "Catching Fire (The Hunger Games, #2)"


async def test_suzanne_collins_is_marked_in_the_hunger_games_authors(reference: Client) -> None:
    response = await reference.get("/api/v1/search/?" + urlencode({"q": "Suzanne Collins"}))
    assert response.status_code == 200, response.text
    results = {result["book_id"]: result for result in response.json()["results"]}
    assert set(results) >= HUNGER_GAMES, sorted(results)
    for book_id in HUNGER_GAMES:
        authors = results[book_id]["highlight"]["authors"]
        name = next(
            segments for segments in authors if "Collins" in "".join(s["text"] for s in segments)
        )
        # The segments join back to the stored name; the matched words are marked.
        assert "".join(segment["text"] for segment in name) == "Suzanne Collins"
        assert {"text": "Collins", "match": True} in name, name
        assert {"text": "Suzanne", "match": True} in name, name


async def test_an_author_completes_from_any_word_with_the_books_counted(reference: Client) -> None:
    for prefix in ("suz", "coll", "Collins"):
        body = await complete(reference, prefix)
        assert {"name": "Suzanne Collins", "books": 3} in body["authors"], (prefix, body)


async def test_one_typo_after_the_third_character_is_forgiven(reference: Client) -> None:
    body = await complete(reference, "colins")
    assert "Suzanne Collins" in author_names(body), body
    body = await complete(reference, "hungre")
    assert set(title_ids(body)) >= HUNGER_GAMES, body


async def test_diacritics_complete_alike(reference: Client) -> None:
    plain = await complete(reference, "bronte")
    marked = await complete(reference, "Brontë")
    assert {"Charlotte Brontë", "Emily Brontë"} <= set(author_names(plain)), plain
    assert author_names(plain) == author_names(marked)


async def test_digits_complete_too(reference: Client) -> None:
    body = await complete(reference, "198")
    assert 13 in title_ids(body), body  # 1984


async def test_size_caps_each_list(reference: Client) -> None:
    body = await complete(reference, "h", size=2)
    assert len(body["titles"]) == 2
    assert len(body["authors"]) <= 2


async def test_nothing_to_complete_is_two_empty_lists(reference: Client) -> None:
    body = await complete(reference, "zzqx")
    assert (body["titles"], body["authors"]) == ([], [])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("prefix=", "prefix"),
        ("prefix=" + "a" * 101, "prefix"),
        ("prefix=a&size=0", "size"),
        ("prefix=a&size=21", "size"),
        ("size=3", "prefix"),
        ("prefix=a&colour=red", "colour"),
    ],
    ids=["empty", "101 characters", "size 0", "size 21", "no prefix", "unknown parameter"],
)
async def test_completion_caps_are_422_naming_the_field(
    client: Client, query: str, field: str
) -> None:
    response = await client.get(f"/api/v1/complete?{query}")
    assert response.status_code == 422, response.text
    assert field in [problem["field"] for problem in response.json()["details"]]


# ---------------------------------------------------------------- similar books


async def similar(client: Client, book_id: int, **params: Any) -> list[int]:
    response = await client.get(f"/api/v1/books/{book_id}/similar?{urlencode(params)}")
    assert response.status_code == 200, response.text
    return [book["book_id"] for book in response.json()["results"]]


async def test_the_hunger_games_is_like_the_other_hunger_games_books(reference: Client) -> None:
    found = await similar(reference, 1)
    assert 1 not in found
    assert HUNGER_GAMES - {1} <= set(found[:5]), found


async def test_harry_potter_is_like_the_other_harry_potter_books(reference: Client) -> None:
    found = await similar(reference, 2, size=6)
    assert set(found) == {18, 21, 23, 24, 25, 27}, found


async def test_an_unknown_book_is_404(client: Client) -> None:
    response = await client.get("/api/v1/books/999999/similar")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_reading_the_book_and_searching_share_the_search_deadline(
    build: str, api_settings: Settings
) -> None:
    # Each call takes 0.6 s on the production transport: the read and the search
    # together pass a 1 s deadline (504); with the read outside it, the search alone
    # fitted and the request took read + search, 1.2 s.
    settings = api_settings.model_copy(update={"search_deadline": 1.0})
    observed = Observed(delay=0.6)
    transport = observed_transport(settings, build, observed)
    async with api_client(build, settings, transport=transport) as client:
        late = await client.get("/api/v1/books/1/similar")
        observed.delay = 0.0
        found = await client.get("/api/v1/books/1/similar")
    assert late.status_code == 504, late.text
    assert late.json()["error"] == "deadline_exceeded"
    assert found.status_code == 200, found.text
    # Both calls are spans of the request's one fan-out, as a search's branches are.
    assert {"es-book", "es-similar"} <= set(parse_server_timing(found.headers["Server-Timing"]))


@pytest.mark.parametrize("query", ["size=0", "size=51", "size=x", "colour=red"])
async def test_similar_caps_are_422(client: Client, query: str) -> None:
    response = await client.get(f"/api/v1/books/1/similar?{query}")
    assert response.status_code == 422, response.text


async def test_authors_that_fail_leave_the_titles_and_say_so(
    build: str, es: Elasticsearch, es_url: str, index_name: str
) -> None:
    # A real Elasticsearch refusal: author_complete is no completion field in this index.
    body = index_body()
    body["mappings"]["properties"]["author_complete"] = {"type": "object", "enabled": False}
    await es.create_index(index_name, body)
    books = [Book.model_validate(record) for record in json.loads(REFERENCE.read_text())]
    assert (await es.bulk(bulk_body(index_name, books), refresh=True))["errors"] is False
    settings = Settings(
        es_urls=[es_url], index=index_name, search_deadline=30.0, complete_deadline=30.0
    )
    async with api_client(build, settings) as client:
        response = await client.get("/api/v1/complete?prefix=hun")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(title_ids(answer)) >= HUNGER_GAMES
    assert (answer["authors"], answer["partial"]) == ([], True)
    assert [error["branch"] for error in answer["errors"]] == ["authors"]
    # The client is told that it failed, not Elasticsearch's own words.
    assert "completion" not in answer["errors"][0]["reason"]
    assert "author_complete" not in response.text
