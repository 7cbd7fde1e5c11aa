"""Which words of a search are sent to the term suggester, and how corrections are put back."""

from __future__ import annotations

import pytest

from trio_books.core.suggest import (
    SUGGEST_MAX_CHARS,
    SUGGEST_WORDS,
    suggest_body,
    suggestion_head,
    with_tail,
)


@pytest.mark.parametrize(
    ("text", "head"),
    [
        ("hobit", "hobit"),
        ("  lord of teh rings ", "  lord of teh rings"),
        ("the quick brown fox jumps over the lazy dog", "the quick brown fox jumps"),
        ("one\ttwo\nthree four five six", "one\ttwo\nthree four five"),
        ("   ", None),
        ("x" * (SUGGEST_MAX_CHARS + 1), None),
        ("ab " * 40, None),  # 120 characters of short nonsense words
    ],
)
def test_only_the_first_words_of_a_short_search_are_corrected(text: str, head: str | None) -> None:
    assert suggestion_head(text) == head
    if head is not None:
        assert len(head.split()) <= SUGGEST_WORDS
        assert suggest_body(head)["suggest"]["text"] == head


def test_a_correction_of_the_head_keeps_the_rest_of_the_search() -> None:
    text = "teh hobit and the dragon over the hills"
    head = suggestion_head(text)
    assert head == "teh hobit and the dragon"
    assert with_tail(["the hobbit and the dragon"], head, text) == [
        "the hobbit and the dragon over the hills"
    ]
