"""Search as you type, the pure part: what each book completes from, the requests, the answers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from trio_books.core.books import Author, Book
from trio_books.core.completion import (
    AuthorCompletion,
    CompleteQuery,
    TitleCompletion,
    authors_body,
    book_counts_body,
    parse_author_names,
    parse_book_counts,
    parse_titles,
    titles_body,
)
from trio_books.core.completion_inputs import (
    author_inputs,
    completion_document,
    fold,
    title_inputs,
)
from trio_books.errors import ResponseShapeError


@pytest.mark.parametrize(
    ("title", "inputs"),
    [
        ("The Hunger Games (The Hunger Games, #1)", ["The Hunger Games", "Hunger Games"]),
        (
            "A Game of Thrones (A Song of Ice and Fire, #1)",
            [
                "A Game of Thrones",
                "Game of Thrones",
                "A Song of Ice and Fire",
                "Song of Ice and Fire",
            ],
        ),
        ("Les Misérables", ["Les Miserables", "Miserables"]),
        ("L'Étranger", ["L'Etranger", "Etranger"]),
        ("Anna Karenina", ["Anna Karenina"]),
        ("Theodore Boone", ["Theodore Boone"]),
        ("I, Robot", ["I, Robot"]),
        ("1984", ["1984"]),
        ("(Untitled, #2)", ["(Untitled, #2)", "Untitled"]),
        ("한국어 책", ["한국어 책"]),
        (
            "\ufb01nal \uff26\uff41\uff4e\uff54\uff41\uff53\uff59",
            ["final Fantasy"],
        ),  # ligature, full width
        ("Tab\there\x00and\x1fthere", ["Tab here and there"]),
    ],
)
def test_what_a_title_completes_from(title: str, inputs: list[str]) -> None:
    assert title_inputs(title) == inputs


def test_what_an_author_completes_from() -> None:
    assert author_inputs("Gabriel García Márquez") == [
        "Gabriel Garcia Marquez",
        "Garcia Marquez",
        "Marquez",
    ]
    assert author_inputs("  Suzanne   Collins ") == ["Suzanne Collins", "Collins"]


def test_folding_keeps_scripts_whole() -> None:
    assert fold("Misérables Ørsted Ελληνικά 東京 한국") == "Miserables Ørsted Ελληνικα 東京 한국"
    # Outside Latin, Greek and Cyrillic a mark belongs to its letter.
    assert fold("がくせい हिन्दी") == "がくせい हिन्दी"
    assert fold("Ёлка") == "Елка"


def test_a_books_completion_fields_weigh_its_ratings() -> None:
    book = Book(
        book_id=1,
        title="The Hunger Games (The Hunger Games, #1)",
        authors=[Author(name="Suzanne Collins"), Author(name="Collins")],
        ratings_count=4_780_653,
    )
    assert completion_document(book) == {
        "title_complete": {"input": ["The Hunger Games", "Hunger Games"], "weight": 4_780_653},
        "author_complete": {"input": ["Suzanne Collins", "Collins"], "weight": 4_780_653},
    }
    unknown = Book(book_id=2, title="Anonymous Work")
    assert completion_document(unknown) == {
        "title_complete": {"input": ["Anonymous Work"], "weight": 0}
    }
    huge = Book(book_id=3, title="X", ratings_count=2**40)
    assert completion_document(huge)["title_complete"]["weight"] == 2**31 - 1


@pytest.mark.parametrize(
    "params",
    [
        {"prefix": ""},
        {"prefix": "x" * 101},
        {"prefix": "a", "size": 0},
        {"prefix": "a", "size": 21},
        {"prefix": "a", "other": "1"},
        {},
    ],
    ids=["empty", "too long", "size 0", "size 21", "unknown parameter", "no prefix"],
)
def test_the_caps(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CompleteQuery.model_validate(params)


def test_the_requests_fold_the_prefix_and_overfetch() -> None:
    query = CompleteQuery(prefix="Misé", size=4)
    assert titles_body(query) == {
        "size": 0,
        "track_total_hits": False,
        "_source": ["book_id", "title"],
        "suggest": {
            "title_complete": {
                "prefix": "Mise",
                "completion": {
                    "field": "title_complete",
                    "size": 4,
                    "skip_duplicates": False,
                    "fuzzy": {"fuzziness": 1, "prefix_length": 3, "min_length": 4},
                },
            }
        },
    }
    body = authors_body(query)
    assert body["_source"] == ["authors"]
    # Several books share an author: the authors are asked for three times over.
    assert body["suggest"]["author_complete"]["completion"]["field"] == "author_complete"
    assert body["suggest"]["author_complete"]["completion"]["size"] == 12
    counts = book_counts_body(["Suzanne Collins", "Eric Carle"])
    names = counts["aggs"]["authors"]["aggs"]["names"]
    assert names["terms"] == {
        "field": "authors.name.raw",
        "include": ["Suzanne Collins", "Eric Carle"],
        "size": 2,
    }
    assert names["aggs"] == {"books": {"reverse_nested": {}}}
    # Only the books of those authors are aggregated, not the whole catalogue.
    assert counts["query"] == {
        "nested": {
            "path": "authors",
            "query": {"terms": {"authors.name.raw": ["Suzanne Collins", "Eric Carle"]}},
        }
    }


def option(field: str, text: str, source: dict[str, Any]) -> dict[str, Any]:
    return {"text": text, "_index": "books", "_id": "x", "_score": 1.0, "_source": source}


def answer(field: str, options: list[dict[str, Any]]) -> dict[str, Any]:
    """A completion answer in Elasticsearch 8's shape."""
    return {
        "took": 1,
        "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []},
        "suggest": {field: [{"text": "hun", "offset": 0, "length": 3, "options": options}]},
    }


def test_one_title_per_book_best_first_cut_to_size() -> None:
    found = answer(
        "title_complete",
        [
            option(
                "title_complete",
                "The Hunger Games",
                {"book_id": 1, "title": "The Hunger Games (The Hunger Games, #1)"},
            ),
            option(
                "title_complete",
                "Hunger Games",
                {"book_id": 1, "title": "The Hunger Games (The Hunger Games, #1)"},
            ),
            option(
                "title_complete", "Hungry", {"book_id": 9, "title": "The Very Hungry Caterpillar"}
            ),
            option(
                "title_complete",
                "Hunger Games",
                {"book_id": 17, "title": "Catching Fire (The Hunger Games, #2)"},
            ),
        ],
    )
    assert parse_titles(found, 2) == [
        TitleCompletion(book_id=1, title="The Hunger Games (The Hunger Games, #1)"),
        TitleCompletion(book_id=9, title="The Very Hungry Caterpillar"),
    ]
    assert len(parse_titles(found, 8)) == 3


def test_only_the_authors_the_prefix_completes_once_each() -> None:
    found = answer(
        "author_complete",
        [
            option("author_complete", "Collins", {"authors": [{"name": "Suzanne Collins"}]}),
            option(
                "author_complete",
                "Collins",
                {"authors": [{"name": "Ann Other"}, {"name": "Suzanne Collins"}]},
            ),
            option("author_complete", "Colfer", {"authors": [{"name": "Eoin Colfer"}]}),
            # A typo in the prefix's fuzzy part hides which author matched: the first one.
            option("author_complete", "Cole", {"authors": [{"name": "Teju Kole"}, {"name": "Z"}]}),
        ],
    )
    assert parse_author_names(found, "Col", 8) == ["Suzanne Collins", "Eoin Colfer", "Teju Kole"]
    assert parse_author_names(found, "col", 1) == ["Suzanne Collins"]
    # Folded on both sides.
    accented = answer(
        "author_complete",
        [
            option(
                "author_complete",
                "Garcia",
                {"authors": [{"name": "Ann"}, {"name": "Gabriel García Márquez"}]},
            )
        ],
    )
    assert parse_author_names(accented, "Márq", 8) == ["Gabriel García Márquez"]


def test_book_counts_keep_the_names_order() -> None:
    found = {
        "aggregations": {
            "authors": {
                "doc_count": 9,
                "names": {
                    "buckets": [
                        {"key": "Eric Carle", "doc_count": 2, "books": {"doc_count": 1}},
                        {"key": "Suzanne Collins", "doc_count": 3, "books": {"doc_count": 3}},
                    ]
                },
            }
        }
    }
    assert parse_book_counts(found, ["Suzanne Collins", "Eric Carle", "Gone Since"]) == [
        AuthorCompletion(name="Suzanne Collins", books=3),
        AuthorCompletion(name="Eric Carle", books=1),
        AuthorCompletion(name="Gone Since", books=0),
    ]


@pytest.mark.parametrize(
    "odd", [{}, {"suggest": {}}, {"suggest": {"title_complete": [{"options": [{}]}]}}]
)
def test_an_answer_of_another_shape_is_our_error(odd: dict[str, Any]) -> None:
    with pytest.raises(ResponseShapeError):
        parse_titles(odd, 8)
    with pytest.raises(ResponseShapeError):
        parse_author_names(odd, "col", 8)
    with pytest.raises(ResponseShapeError):
        parse_book_counts(odd, ["x"])


def test_the_whole_prefix_chooses_among_a_books_authors() -> None:
    found = answer(
        "author_complete",
        [
            option(
                "author_complete",
                "Jane Austen",
                {"authors": [{"name": "Jane Austen"}, {"name": "Janet Todd"}]},
            )
        ],
    )
    assert parse_author_names(found, "jane aus", 8) == ["Jane Austen"]
    # Separators and punctuation count for nothing, as in the completion field.
    oconnor = answer(
        "author_complete",
        [
            option(
                "author_complete",
                "O'Connor",
                {"authors": [{"name": "Ann Other"}, {"name": "Flannery O'Connor"}]},
            )
        ],
    )
    assert parse_author_names(oconnor, "oc", 8) == ["Flannery O'Connor"]
    assert parse_author_names(oconnor, " o'con", 8) == ["Flannery O'Connor"]
