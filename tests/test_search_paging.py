"""Highlights, page links and cursors, on both builds, against the real Elasticsearch.

The test catalogue (``catalogue.py``, 34 books) checks each rule; the
goodbooks-10k catalogue, loaded whole, checks that cursors go past the
10,000-result window and see every book exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from catalogue import BOOKS
from loading import load_files
from servers import api_client

from trio_books.core.query import SORTS
from trio_books.es.client import Elasticsearch
from trio_books.settings import Settings

Client = httpx.AsyncClient
SEARCH = "/api/v1/search/"
GOODBOOKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "goodbooks-10k-books.csv"


async def get(client: Client, query: str) -> httpx.Response:
    return await client.get(f"{SEARCH}{query}")


async def search(client: Client, **params: Any) -> tuple[dict[str, Any], httpx.Response]:
    response = await get(client, "?" + urlencode(params, doseq=True))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body, response


def by_id(body: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {result["book_id"]: result for result in body["results"]}


def m(text: str) -> dict[str, Any]:
    return {"text": text, "match": True}


def u(text: str) -> dict[str, Any]:
    return {"text": text, "match": False}


# ---------------------------------------------------------------- highlights


async def test_an_authors_matched_words_are_marked(client: Client) -> None:
    body, _ = await search(client, q="Suzanne Collins")
    hunger_games = by_id(body)[1]
    assert hunger_games["highlight"] == {
        "title": [u("The Hunger Games (The Hunger Games, #1)")],
        "authors": [[m("Suzanne"), u(" "), m("Collins")]],
    }


async def test_a_titles_matched_words_are_marked_and_other_authors_are_not(client: Client) -> None:
    body, _ = await search(client, q="hunger")
    hunger_games = by_id(body)[1]
    assert hunger_games["highlight"] == {
        "title": [u("The "), m("Hunger"), u(" Games (The "), m("Hunger"), u(" Games, #1)")],
        "authors": [[u("Suzanne Collins")]],
    }


async def test_each_of_several_authors_is_marked_in_its_place(client: Client) -> None:
    several = next(book for book in BOOKS if len(book.authors) >= 3)
    last = several.authors[-1].name.split()[-1]
    body, _ = await search(client, q=last)
    marked = by_id(body)[several.book_id]["highlight"]["authors"]
    assert len(marked) == len(several.authors)
    assert [segment["text"] for segment in marked[-1] if segment["match"]] == [last]
    for author, segments in zip(several.authors, marked, strict=True):
        assert "".join(segment["text"] for segment in segments) == author.name


async def test_no_highlight_when_asked_not_to_or_without_text(client: Client) -> None:
    off, _ = await search(client, q="hunger", highlight="false")
    assert {result["highlight"] for result in off["results"]} == {None}
    browse, _ = await search(client, tags="dystopia")
    assert {result["highlight"] for result in browse["results"]} == {None}


# ---------------------------------------------------------------- page links


async def test_numbered_pages_link_to_their_neighbours(client: Client) -> None:
    first, response = await search(client, sort="title", size=10)
    assert (first["page"], first["size"], first["pages"]) == (1, 10, 4)
    assert (first["next"], first["prev"]) == ("?sort=title&size=10&page=2", None)
    assert response.headers["link"] == '<?sort=title&size=10&page=2>; rel="next"'

    second, response = await search(client, sort="title", size=10, page=2)
    assert (second["next"], second["prev"]) == (
        "?sort=title&size=10&page=3",
        "?sort=title&size=10&page=1",
    )
    assert response.headers["link"] == (
        '<?sort=title&size=10&page=3>; rel="next", <?sort=title&size=10&page=1>; rel="prev"'
    )

    last, response = await search(client, sort="title", size=10, page=4)
    assert len(last["results"]) == len(BOOKS) - 30
    assert (last["next"], last["prev"], last["cursor"]) == (
        None,
        "?sort=title&size=10&page=3",
        None,
    )
    assert response.headers["link"] == '<?sort=title&size=10&page=3>; rel="prev"'


async def test_a_link_keeps_every_parameter_as_sent(client: Client) -> None:
    query = "?tags=young-adult&q=the%20games&tags=dystopia&size=1"
    response = await get(client, query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next"] == "?tags=young-adult&q=the%20games&tags=dystopia&size=1&page=2"
    # Followed as a browser would, relative to the page's own URL.
    following = await get(client, body["next"])
    assert following.status_code == 200
    assert following.json()["page"] == 2


async def test_no_results_no_links(client: Client) -> None:
    body, response = await search(client, q="zzzzqqqq")
    assert (body["pages"], body["next"], body["prev"], body["cursor"]) == (0, None, None, None)
    assert "link" not in response.headers


# ---------------------------------------------------------------- cursors


async def walk(client: Client, **params: Any) -> list[int]:
    """Every book: the first page, then each answer's ``cursor`` until there is none."""
    body, _ = await search(client, **params)
    seen = [result["book_id"] for result in body["results"]]
    while body["cursor"] is not None:
        assert len(seen) <= 20_000, "the cursors go round in circles"
        body, _ = await search(client, **params, cursor=body["cursor"])
        seen += [result["book_id"] for result in body["results"]]
    return seen


@pytest.mark.parametrize("sort", list(SORTS))
async def test_cursors_see_every_book_once_in_the_pages_order(client: Client, sort: str) -> None:
    by_page: list[int] = []
    for page in range(1, 5):
        body, _ = await search(client, sort=sort, size=10, page=page)
        by_page += [result["book_id"] for result in body["results"]]
    first, _ = await search(client, sort=sort, size=7)
    by_cursor = [result["book_id"] for result in first["results"]]
    cursor = first["cursor"]
    while cursor is not None:
        body, response = await search(client, sort=sort, size=7, cursor=cursor)
        assert (body["page"], body["prev"]) == (1, None)
        by_cursor += [result["book_id"] for result in body["results"]]
        cursor = body["cursor"]
        assert (body["next"] is None) == (cursor is None)
        if cursor is not None:
            assert response.headers["link"] == f'<?sort={sort}&size=7&cursor={cursor}>; rel="next"'
    assert by_cursor == by_page
    assert len(set(by_cursor)) == len(BOOKS)


async def test_a_changed_cursor_is_422_naming_the_field(client: Client) -> None:
    first, _ = await search(client, sort="year", size=5)
    cursor = first["cursor"]
    body, payload = cursor.split(".")
    middle = len(body) // 2
    for broken in (
        # A character in the middle of each part (a last one may be padding bits only).
        body + "." + payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:],
        body[:middle] + ("A" if body[middle] != "A" else "B") + body[middle + 1 :] + "." + payload,
        "not-a-cursor",
    ):
        response = await get(client, "?" + urlencode({"sort": "year", "cursor": broken}))
        assert response.status_code == 422, response.text
        problem = response.json()
        assert [field["field"] for field in problem["details"]] == ["cursor"], problem
        assert "gave out" in response.text


async def test_a_cursor_for_another_sort_or_with_a_page_is_422(client: Client) -> None:
    first, _ = await search(client, sort="year", size=5)
    other = await get(client, "?" + urlencode({"sort": "title", "cursor": first["cursor"]}))
    assert other.status_code == 422
    assert "continues sort=year, not sort=title" in other.text
    both = await get(
        client, "?" + urlencode({"sort": "year", "page": 2, "cursor": first["cursor"]})
    )
    assert both.status_code == 422
    assert [field["field"] for field in both.json()["details"]] == ["cursor"]


async def test_a_cursor_from_another_key_is_refused(build: str, api_settings: Settings) -> None:
    other = api_settings.model_copy(update={"cursor_key": Settings(cursor_key="x" * 32).cursor_key})
    async with api_client(build, api_settings) as one, api_client(build, other) as two:
        first, _ = await search(one, sort="title", size=5)
        assert (await get(one, f"?sort=title&cursor={first['cursor']}")).status_code == 200
        refused = await get(two, f"?sort=title&cursor={first['cursor']}")
    assert refused.status_code == 422
    assert "key change" in refused.text


# ---------------------------------------------------------------- past the window


@pytest.fixture
async def goodbooks(es: Elasticsearch, index_name: str, tmp_path: Path) -> str:
    """The goodbooks-10k catalogue, loaded whole under an alias of the test's own."""
    copy = tmp_path / "books.csv"
    copy.write_bytes(GOODBOOKS.read_bytes())
    report, _, console = await load_files(es, index_name, copy)
    assert (report.published, report.count) == (True, 10_000), console.getvalue()
    return index_name


async def test_cursors_go_through_all_ten_thousand_books_once(
    build: str, es_url: str, goodbooks: str
) -> None:
    settings = Settings(es_urls=[es_url], index=goodbooks, search_deadline=30.0)
    async with api_client(build, settings) as client:
        seen = await walk(client, sort="rating", size=100)
        # Numbers stop at the window: page 333 of 30 reaches book 9,990, and its next
        # link goes on by cursor to the last 10.
        last_numbered, _ = await search(client, sort="rating", size=30, page=333)
        assert (last_numbered["pages"], last_numbered["count"]) == (333, 10_000)
        assert "cursor=" in last_numbered["next"]
        assert "page=" not in last_numbered["next"]
        response = await get(client, last_numbered["next"])
        assert response.status_code == 200, response.text
        beyond = response.json()
    assert len(seen) == 10_000
    assert len(set(seen)) == 10_000
    assert [book["book_id"] for book in last_numbered["results"]] == seen[9_960:9_990]
    assert [book["book_id"] for book in beyond["results"]] == seen[9_990:]
    assert beyond["next"] is None
