"""Parsing Elasticsearch answers into response models, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from trio_books.core.results import parse_facet, parse_results, parse_search
from trio_books.errors import ResponseShapeError

HITS: dict[str, Any] = {
    "hits": {
        "total": {"value": 42, "relation": "eq"},
        "hits": [
            {
                "_id": "7",
                "_source": {"book_id": 7, "title": "The Iliad", "authors": [{"name": "Homer"}]},
            }
        ],
    }
}
TAGS: dict[str, Any] = {
    "aggregations": {
        "tags": {
            "doc_count": 9,
            "slugs": {
                "buckets": [
                    {
                        "key": "war",
                        "doc_count": 3,
                        "title": {"buckets": [{"key": "War", "doc_count": 3}]},
                        "books": {"doc_count": 2},
                    },
                    {
                        "key": "odd",
                        "doc_count": 1,
                        "title": {"buckets": []},
                        "books": {"doc_count": 1},
                    },
                ]
            },
        }
    }
}
YEARS: dict[str, Any] = {"aggregations": {"years": {"buckets": [{"key": -750, "doc_count": 1}]}}}
LANGUAGES: dict[str, Any] = {
    "aggregations": {"languages": {"buckets": [{"key": "grc", "doc_count": 4}]}}
}


def test_hits_parse_into_books_and_total() -> None:
    books, total = parse_results(HITS)
    assert total == 42
    assert [(b.book_id, b.title, b.authors[0].name) for b in books] == [(7, "The Iliad", "Homer")]


def test_tag_facet_counts_books_and_falls_back_to_slug_for_title() -> None:
    tags = parse_facet("tags", TAGS)
    assert [(t.slug, t.title, t.count) for t in tags] == [("war", "War", 2), ("odd", "odd", 1)]


def test_whole_search() -> None:
    response = parse_search(
        {"hits": HITS, "facet-tags": TAGS, "facet-years": YEARS, "facet-languages": LANGUAGES}
    )
    assert response.count == 42
    assert response.facets.years[0].year == -750
    assert response.facets.languages[0].code == "grc"


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"hits": {}},
        {"hits": {"total": {"value": 1}, "hits": [{"_source": {"title": "no id"}}]}},
        {"hits": []},
    ],
)
def test_misshapen_hits_raise_our_error(answer: dict[str, Any]) -> None:
    with pytest.raises(ResponseShapeError):
        parse_results(answer)


def test_misshapen_facets_raise_our_error() -> None:
    with pytest.raises(ResponseShapeError):
        parse_facet(
            "years",
            {"aggregations": {"years": {"buckets": [{"key": "not a year", "doc_count": 1}]}}},
        )
