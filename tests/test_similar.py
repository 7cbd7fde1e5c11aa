"""The similar-books query, built from the book: no server, plain data in and out."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trio_books.core.books import Author, Book, Tag
from trio_books.core.similar import SimilarQuery, similar_body

BOOK = Book(
    book_id=1,
    title="The Hunger Games (The Hunger Games, #1)",
    original_title="The Hunger Games",
    authors=[Author(name="Suzanne Collins")],
    tags=[Tag(title="Dystopia", slug="dystopia")],
)


def test_title_words_authors_and_tags_and_never_the_book_itself() -> None:
    body = similar_body(BOOK, 10)
    query = body["query"]["bool"]
    assert query["must_not"] == [{"ids": {"values": ["1"]}}]
    assert query["minimum_should_match"] == 1
    mlt, authors, tags = query["should"]
    assert mlt["more_like_this"]["like"] == [BOOK.title, "The Hunger Games"]
    assert mlt["more_like_this"]["fields"] == ["title", "original_title"]
    # A word seen once in a small catalogue still counts.
    assert (mlt["more_like_this"]["min_term_freq"], mlt["more_like_this"]["min_doc_freq"]) == (1, 1)
    assert authors["nested"]["query"]["bool"]["should"] == [
        {"match_phrase": {"authors.name": {"query": "Suzanne Collins", "boost": 2}}}
    ]
    assert tags["nested"]["query"]["terms"]["tags.slug"] == ["dystopia"]
    assert body["size"] == 10
    assert body["_source"] == {"excludes": ["title_complete", "author_complete", "title_sort"]}


def test_a_book_without_authors_or_tags_is_matched_by_title_alone() -> None:
    body = similar_body(Book(book_id=7, title="Anonymous"), 3)
    should = body["query"]["bool"]["should"]
    assert len(should) == 1
    assert should[0]["more_like_this"]["like"] == ["Anonymous"]


@pytest.mark.parametrize("size", [0, 51])
def test_the_size_cap(size: int) -> None:
    with pytest.raises(ValidationError):
        SimilarQuery(size=size)
    assert SimilarQuery().size == 10
