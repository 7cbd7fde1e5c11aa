"""Round trips through the real Elasticsearch: the book mapping, bulk indexing, searching back."""

from __future__ import annotations

from trio_books.core.books import Author, Book, Tag, document_to_book
from trio_books.core.bulk import bulk_body
from trio_books.core.mapping import index_body
from trio_books.es.client import Elasticsearch

BOOKS = [
    Book(
        book_id=1,
        title="The Hunger Games (The Hunger Games, #1)",
        original_title="The Hunger Games",
        authors=[Author(name="Suzanne Collins")],
        tags=[Tag(title="Between Film", slug="between-film")],
        original_publication_year=2008,
        language_code="eng",
    ),
    Book(
        book_id=2,
        title="Good Omens",
        authors=[Author(name="Terry Pratchett"), Author(name="Neil Gaiman")],
        tags=[Tag(title="Film", slug="film"), Tag(title="Humour", slug="humour")],
        original_publication_year=1990,
        language_code="eng",
    ),
    Book(
        book_id=3,
        title="Odysseia",
        authors=[Author(name="Homer")],
        tags=[Tag(title="Classics", slug="classics")],
        original_publication_year=-720,
        language_code="grc",
    ),
]


async def load(es: Elasticsearch, index: str) -> None:
    await es.create_index(index, index_body())
    result = await es.bulk(bulk_body(index, BOOKS), refresh=True)
    assert result["errors"] is False
    assert len(result["items"]) == len(BOOKS)


async def hit_ids(es: Elasticsearch, index: str, query: dict[str, object]) -> list[int]:
    found = await es.search(index, {"query": query, "sort": [{"book_id": "asc"}]})
    return [hit["_source"]["book_id"] for hit in found["hits"]["hits"]]


async def test_mapping_is_the_book_mapping(es: Elasticsearch, index_name: str) -> None:
    await es.create_index(index_name, index_body())
    mapping = await es.request("GET", f"/{index_name}/_mapping")
    properties = mapping[index_name]["mappings"]["properties"]
    assert properties["authors"]["type"] == "nested"
    assert properties["tags"]["type"] == "nested"
    assert properties["tags"]["properties"]["slug"]["type"] == "keyword"


async def test_books_round_trip_unchanged(es: Elasticsearch, index_name: str) -> None:
    await load(es, index_name)
    for book in BOOKS:
        source = await es.get_source(index_name, str(book.book_id))
        assert source is not None
        assert document_to_book(source) == book


async def test_author_names_match_inside_nested_authors(es: Elasticsearch, index_name: str) -> None:
    await load(es, index_name)
    query = {"nested": {"path": "authors", "query": {"match": {"authors.name": "Gaiman"}}}}
    assert await hit_ids(es, index_name, query) == [2]


async def test_tag_slugs_are_exact_keywords(es: Elasticsearch, index_name: str) -> None:
    await load(es, index_name)
    query = {"nested": {"path": "tags", "query": {"term": {"tags.slug": "film"}}}}
    # "between-film" must not match "film", as it did in the reference service.
    assert await hit_ids(es, index_name, query) == [2]


async def test_negative_years_are_stored_and_ranged(es: Elasticsearch, index_name: str) -> None:
    await load(es, index_name)
    query = {"range": {"original_publication_year": {"lt": 0}}}
    assert await hit_ids(es, index_name, query) == [3]


async def test_reindexing_the_same_books_is_idempotent(es: Elasticsearch, index_name: str) -> None:
    await load(es, index_name)
    again = await es.bulk(bulk_body(index_name, BOOKS), refresh=True)
    assert again["errors"] is False
    count = await es.request("GET", f"/{index_name}/_count")
    assert count["count"] == len(BOOKS)
