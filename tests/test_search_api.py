"""The search API's contract, for both builds, against the real Elasticsearch holding the test catalogue."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from catalogue import BOOKS, BY_ID, language_counts, tag_counts, where, year_counts
from conftest import TEST_ENGINE, TEST_ENGINE_VERSION

from trio_books.core.books import Book

Client = httpx.AsyncClient

SEARCH = "/api/v1/search/"


async def search(client: Client, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{SEARCH}?{urlencode(params, doseq=True)}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[int]:
    return [book["book_id"] for book in body["results"]]


def id_set(books: list[Book]) -> set[int]:
    return {book.book_id for book in books}


# ---------------------------------------------------------------- small routes


async def test_ping(client: Client) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.json() == {"message": "Ping"}


async def test_healthz_and_readyz(client: Client) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] in {"green", "yellow"}
    # The engine the session runs (Elasticsearch 8.19, or the compatibility run's).
    assert ready.json()["engine"] == {"name": TEST_ENGINE.name, "version": TEST_ENGINE_VERSION}


# ---------------------------------------------------------------- free text


async def test_free_text_matches_titles(client: Client) -> None:
    body = await search(client, q="hobbit")
    assert ids(body) == [17]
    assert body["count"] == 1


async def test_free_text_matches_original_titles(client: Client) -> None:
    assert ids(await search(client, q="Verwandlung")) == [13]


async def test_free_text_matches_any_author_of_a_book(client: Client) -> None:
    # Gaiman is the second author of Good Omens and the only author of Neverwhere.
    assert set(ids(await search(client, q="Gaiman"))) == {5, 29}


async def test_author_surname_is_enough(client: Client) -> None:
    # "Susan Collins" finds Suzanne Collins's books through the shared surname.
    body = await search(client, q="Susan Collins")
    assert set(ids(body)) == {1, 2}


async def test_free_text_is_never_query_syntax(client: Client) -> None:
    body = await search(client, q='hobbit AND title:(dune OR "war") {"script": 1} *')
    # Plain words: "hobbit", "dune" and "war" each match as words, nothing fails.
    assert {17, 19, 21} <= set(ids(body))


# ---------------------------------------------------------------- filters


async def test_tags_are_exact_slugs(client: Client) -> None:
    body = await search(client, tags="film", size=100)
    assert set(ids(body)) == id_set(where(tags=["film"])) == {3, 11, 18, 30}


async def test_tags_any_of_several(client: Client) -> None:
    body = await search(client, tags=["film", "between-film"], size=100)
    assert set(ids(body)) == id_set(where(tags=["film", "between-film"]))
    assert body["count"] == 6


async def test_tags_all_of_several(client: Client) -> None:
    body = await search(client, tags=["classics", "war"], tags_mode="all", size=100)
    assert set(ids(body)) == id_set(where(tags=["classics", "war"], tags_mode="all")) == {7, 21, 27}


async def test_exact_year_including_negative(client: Client) -> None:
    assert ids(await search(client, year=-720)) == [6]
    assert set(ids(await search(client, year=2009))) == {2, 34}


async def test_year_range_is_inclusive(client: Client) -> None:
    body = await search(client, year_from=-750, year_to=-19, size=100)
    assert set(ids(body)) == id_set(where(year_from=-750, year_to=-19)) == {6, 7, 8, 27}


async def test_language(client: Client) -> None:
    body = await search(client, language="ger", size=100)
    assert set(ids(body)) == id_set(where(language="ger")) == {12, 13, 34}


async def test_filters_combine(client: Client) -> None:
    body = await search(client, q="war", tags="classics", language="rus", year_from=1800, size=100)
    assert ids(body) == [21]
    body = await search(client, tags="fantasy", language="eng", year_to=1990, size=100)
    assert set(ids(body)) == id_set(where(tags=["fantasy"], language="eng", year_to=1990))


# ---------------------------------------------------------------- order and pages


def order(ids: str) -> list[int]:
    return [int(number) for number in ids.split()]


# Each order written out as data, not recomputed: a test that sorted the catalogue
# with the service's own key would agree with any bug in that key.
EXPECTED_ORDER = {
    # Oldest first; ties by book id; the book without a year (32) last.
    "year": order(
        "7 6 27 8 9 33 26 10 11 22 21 13 12 16 17 24 15"
        " 14 20 18 19 23 30 25 28 5 29 3 4 31 1 2 34 32"
    ),
    # Newest first; the book without a year still last.
    "-year": order(
        "2 34 1 4 31 3 29 5 28 25 30 23 19 18 20 14 15"
        " 24 17 16 12 13 21 22 11 10 26 33 9 8 27 6 7 32"
    ),
    # An Untitled Manuscript, Animal Farm, Beowulf, Brave New World, Catching Fire, …
    # Les Misérables before Meditations, The Aeneid … The Trial, War and Peace.
    "title": order(
        "32 15 33 16 2 31 22 28 10 19 20 5 4 3 11 9 29"
        " 14 25 23 8 27 18 30 17 34 1 7 24 13 6 26 12 21"
    ),
    # Highest average first, more ratings first on a tie; unrated books last.
    "rating": order(
        "31 3 4 1 18 28 2 24 17 5 19 22 9 30 20 29 11"
        " 14 21 23 25 12 16 27 34 15 10 7 8 13 6 26 33 32"
    ),
}


def expected_order(sort: str) -> list[int]:
    listed = EXPECTED_ORDER[sort]
    assert sorted(listed) == sorted(book.book_id for book in BOOKS)  # the data is whole
    return listed


@pytest.mark.parametrize("sort", ["year", "-year", "title", "rating"])
async def test_sort_orders(client: Client, sort: str) -> None:
    assert ids(await search(client, sort=sort, size=100)) == expected_order(sort)


async def test_paging_walks_every_book_once(client: Client) -> None:
    seen: list[int] = []
    for page in range(1, 9):
        body = await search(client, sort="year", size=5, page=page)
        assert body["count"] == len(BOOKS)
        seen += ids(body)
    assert seen == expected_order("year")
    assert len(seen) == len(set(seen)) == len(BOOKS)


async def test_relevance_puts_the_best_match_first(client: Client) -> None:
    assert ids(await search(client, q="harry potter chamber"))[0] == 4


# ---------------------------------------------------------------- facets


def facet_dicts(
    body: dict[str, Any],
) -> tuple[dict[object, int], dict[object, int], dict[object, int]]:
    facets = body["facets"]
    return (
        {t["slug"]: t["count"] for t in facets["tags"]},
        {y["year"]: y["count"] for y in facets["years"]},
        {lang["code"]: lang["count"] for lang in facets["languages"]},
    )


async def test_facets_without_filters_count_the_whole_catalogue(client: Client) -> None:
    tags, years, languages = facet_dicts(await search(client))
    assert tags == tag_counts(BOOKS)
    assert years == year_counts(BOOKS)
    assert languages == language_counts(BOOKS)


async def test_facets_are_disjunctive(client: Client) -> None:
    filters = {"tags": ["fantasy"], "language": "eng", "year_from": 1950}
    body = await search(client, **filters, size=100)
    tags, years, languages = facet_dicts(body)
    chosen = where(tags=["fantasy"], language="eng", year_from=1950)
    assert body["count"] == len(chosen)
    # Each facet applies every filter except its own.
    assert tags == tag_counts(where(language="eng", year_from=1950))
    assert years == year_counts(where(tags=["fantasy"], language="eng"))
    assert languages == language_counts(where(tags=["fantasy"], year_from=1950))


async def test_tag_facet_carries_titles(client: Client) -> None:
    body = await search(client, q="Kafka")
    assert {(t["slug"], t["title"]) for t in body["facets"]["tags"]} == {
        ("classics", "Classics"),
        ("philosophy", "Philosophy"),
    }


# ---------------------------------------------------------------- books


async def test_book_by_id(client: Client) -> None:
    response = await client.get("/api/v1/books/6")
    assert response.status_code == 200
    assert Book.model_validate(response.json()) == BY_ID[6]


async def test_unknown_book_is_404_json(client: Client) -> None:
    response = await client.get("/api/v1/books/999999")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_results_are_whole_books(client: Client) -> None:
    body = await search(client, q="Odyssey")
    assert [Book.model_validate(book) for book in body["results"]] == [BY_ID[6]]
