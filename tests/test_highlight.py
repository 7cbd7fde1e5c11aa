"""Highlights as segments: marked where Elasticsearch marked, the stored text when joined."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from trio_books.core.books import Author, Book
from trio_books.core.highlight import (
    END,
    START,
    Highlight,
    Segment,
    author_inner_hits,
    book_highlight,
    segments,
    title_highlight,
)


def m(text: str) -> Segment:
    return Segment(text=text, match=True)


def u(text: str) -> Segment:
    return Segment(text=text, match=False)


def test_marked_words_become_matched_segments() -> None:
    marked = f"The {START}Hunger{END} {START}Games{END} (The {START}Hunger{END} Games, #1)"
    plain = "The Hunger Games (The Hunger Games, #1)"
    assert segments(marked, plain) == [
        u("The "),
        m("Hunger"),
        u(" "),
        m("Games"),
        u(" (The "),
        m("Hunger"),
        u(" Games, #1)"),
    ]


def test_adjacent_marks_merge_and_empty_ones_vanish() -> None:
    assert segments(f"{START}Les{END}{START}Mis{END}{START}{END} x", "LesMis x") == [
        m("LesMis"),
        u(" x"),
    ]


def test_markup_in_a_title_is_only_text() -> None:
    plain = '<img src=x onerror="alert(1)"> & Co'
    marked = f'<img src=x onerror="alert(1)"> &amp; {START}Co{END}'
    # Elasticsearch's default encoder leaves the text as it is; a changed text is refused.
    assert segments(marked, plain) == [u(plain)]
    assert segments(plain.replace("Co", f"{START}Co{END}"), plain) == [
        u('<img src=x onerror="alert(1)"> & '),
        m("Co"),
    ]


def test_a_highlight_that_does_not_join_back_is_dropped() -> None:
    assert segments(f"{START}Dune{END} Messiah", "Dune") == [u("Dune")]
    assert segments(f"{START}Dune", "Dune") == [u("Dune")]


def test_a_text_holding_a_marker_is_left_unmarked() -> None:
    for odd in (f"A{START}B", f"A{END}B"):
        assert segments(odd.replace("A", f"{START}A{END}"), odd) == [u(odd)]


spans = st.lists(st.tuples(st.text(min_size=1, max_size=8), st.booleans()), max_size=8)


@given(
    spans.map(lambda parts: [(t.replace(START, "").replace(END, "") or "x", b) for t, b in parts])
)
def test_any_marked_text_parses_back_to_its_spans(parts: list[tuple[str, bool]]) -> None:
    plain = "".join(text for text, _ in parts)
    marked = "".join(f"{START}{text}{END}" if match else text for text, match in parts)
    found = segments(marked, plain)
    assert "".join(segment.text for segment in found) == plain
    assert "".join(segment.text for segment in found if segment.match) == "".join(
        text for text, match in parts if match
    )
    assert all(a.match != b.match for a, b in itertools.pairwise(found))


BOOK = Book(
    book_id=1,
    title="The Hunger Games (The Hunger Games, #1)",
    authors=[
        Author(name="Suzanne Collins"),
        Author(name="Someone Else"),
        Author(name="Collins Two"),
    ],
)
PLAIN = (BOOK.title, [author.name for author in BOOK.authors])


def hit(title: str | None, authors: dict[int, str]) -> dict[str, Any]:
    """A hit in the shape Elasticsearch 8 gives it, with author inner hits."""
    found: dict[str, Any] = {"_id": "1", "_source": {}}
    if title is not None:
        found["highlight"] = {"title": [title]}
    found["inner_hits"] = {
        "authors": {
            "hits": {
                "total": {"value": len(authors), "relation": "eq"},
                "hits": [
                    {
                        "_index": "books",
                        "_id": "1",
                        "_nested": {"field": "authors", "offset": at},
                        "_score": 1.0,
                        "highlight": {"authors.name": [name]},
                    }
                    for at, name in authors.items()
                ],
            }
        }
    }
    return found


def test_a_book_gets_its_title_and_each_author_by_position() -> None:
    found = book_highlight(
        hit(None, {0: f"Suzanne {START}Collins{END}", 2: f"{START}Collins{END} Two"}), *PLAIN
    )
    assert found == Highlight(
        title=[u(BOOK.title)],
        authors=[[u("Suzanne "), m("Collins")], [u("Someone Else")], [m("Collins"), u(" Two")]],
    )


def test_a_title_match_and_no_author_match() -> None:
    found = book_highlight(hit(f"The {START}Hunger{END} Games (The Hunger Games, #1)", {}), *PLAIN)
    assert found.title == [u("The "), m("Hunger"), u(" Games (The Hunger Games, #1)")]
    assert found.authors == [[u(a.name)] for a in BOOK.authors]


def test_an_answer_of_another_shape_leaves_everything_unmarked() -> None:
    plain = Highlight(title=[u(BOOK.title)], authors=[[u(a.name)] for a in BOOK.authors])
    for odd in (
        {},
        {"highlight": "x", "inner_hits": []},
        {"highlight": {"title": []}, "inner_hits": {"authors": {"hits": {"hits": [1, None]}}}},
        {"inner_hits": {"authors": {"hits": {"hits": [{"_nested": {"offset": "0"}}]}}}},
        {
            "inner_hits": {
                "authors": {
                    "hits": {
                        "hits": [
                            {
                                "_nested": {"offset": True},
                                "highlight": {"authors.name": [f"{START}Someone{END} Else"]},
                            }
                        ]
                    }
                }
            }
        },
        {
            "inner_hits": {
                "authors": {
                    "hits": {
                        "hits": [{"_nested": {"offset": 9}, "highlight": {"authors.name": ["x"]}}]
                    }
                }
            }
        },
    ):
        assert book_highlight(odd, *PLAIN) == plain


def test_the_requests_mark_whole_fields_with_the_private_markers() -> None:
    assert title_highlight() == {
        "pre_tags": [START],
        "post_tags": [END],
        "number_of_fragments": 0,
        "fields": {"title": {}},
    }
    inner = author_inner_hits()
    assert inner["name"] == "authors"
    assert inner["_source"] is False
    assert inner["highlight"]["fields"] == {"authors.name": {}}
    assert inner["highlight"]["number_of_fragments"] == 0
