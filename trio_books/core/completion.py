"""Search as you type: the request for completions and the answer they make.

Titles and author names complete from what each book feeds the completion
fields (:mod:`trio_books.core.completion_inputs`). A completion answers two
branches run together, as a search's are: titles (one request) and authors
(a completion request, then an aggregation for each name's book count).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trio_books.core.completion_inputs import author_inputs, fold
from trio_books.core.mapping import COMPLETION_INPUT_LENGTH
from trio_books.core.results import BranchError
from trio_books.errors import ResponseShapeError

TITLES_BRANCH = "titles"
AUTHORS_BRANCH = "authors"
# The authors branch's second request, run once its first has answered.
AUTHOR_BOOKS_BRANCH = "author-books"
MAX_PREFIX = COMPLETION_INPUT_LENGTH
MAX_COMPLETE_SIZE = 20
# Several books share an author, and the suggester gives books: ask for more, keep
# one per name.
OVERFETCH = 3
# One typo is forgiven after the first three characters, as a user expects.
FUZZY = {"fuzziness": 1, "prefix_length": 3, "min_length": 4}

# ---------------------------------------------------------------- the query


class CompleteQuery(BaseModel):
    """The query string of ``GET /complete``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefix: str = Field(
        min_length=1,
        max_length=MAX_PREFIX,
        description="What the user has typed so far.",
        examples=["hun"],
    )
    size: int = Field(
        default=8, ge=1, le=MAX_COMPLETE_SIZE, description="Completions of each kind, 1-20."
    )


def _suggest_body(field: str, prefix: str, size: int, source: list[str]) -> dict[str, Any]:
    # *size* options: the suggester gives each document once.
    return {
        # Suggestions only: no hits, no count.
        "size": 0,
        "track_total_hits": False,
        "_source": source,
        "suggest": {
            field: {
                "prefix": fold(prefix),
                "completion": {
                    "field": field,
                    "size": size,
                    "skip_duplicates": False,
                    "fuzzy": dict(FUZZY),
                },
            }
        },
    }


def titles_body(query: CompleteQuery) -> dict[str, Any]:
    """The titles branch's request."""
    return _suggest_body("title_complete", query.prefix, query.size, ["book_id", "title"])


def authors_body(query: CompleteQuery) -> dict[str, Any]:
    """The authors branch's first request: books whose authors complete the prefix.

    Several books share an author: more are asked for than names are wanted.
    """
    return _suggest_body("author_complete", query.prefix, query.size * OVERFETCH, ["authors"])


def book_counts_body(names: list[str]) -> dict[str, Any]:
    """The authors branch's second request: how many books each of *names* wrote.

    Only their books are aggregated: without the query, the terms aggregation
    walked every author entry of the catalogue to count a handful of names.
    """
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"nested": {"path": "authors", "query": {"terms": {"authors.name.raw": names}}}},
        "aggs": {
            "authors": {
                "nested": {"path": "authors"},
                "aggs": {
                    "names": {
                        "terms": {
                            "field": "authors.name.raw",
                            "include": names,
                            "size": len(names),
                        },
                        # Count books, not author entries.
                        "aggs": {"books": {"reverse_nested": {}}},
                    }
                },
            }
        },
    }


# ---------------------------------------------------------------- the answers


class TitleCompletion(BaseModel):
    model_config = ConfigDict(frozen=True)

    book_id: int = Field(examples=[1])
    title: str = Field(examples=["The Hunger Games (The Hunger Games, #1)"])


class AuthorCompletion(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(examples=["Suzanne Collins"])
    books: int = Field(ge=0, description="Books by this author in the catalogue.", examples=[3])


class CompleteResponse(BaseModel):
    """Titles and authors that complete the prefix, best known first.

    ``partial`` is true when the authors could not be completed in time (or
    at all); ``errors`` then says why. The titles are required: without them
    the request fails.
    """

    titles: list[TitleCompletion]
    authors: list[AuthorCompletion] = Field(default_factory=list)
    partial: bool = False
    errors: list[BranchError] = Field(default_factory=list)


def _options(answer: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    entries = answer["suggest"][field]
    return [option for entry in entries for option in entry["options"]]


def parse_titles(answer: Mapping[str, Any], size: int) -> list[TitleCompletion]:
    """The titles branch's answer: one completion per book, best first."""
    try:
        found: dict[int, TitleCompletion] = {}
        for option in _options(answer, "title_complete"):
            source = option["_source"]
            book_id = int(source["book_id"])
            found.setdefault(book_id, TitleCompletion(book_id=book_id, title=str(source["title"])))
        return list(found.values())[:size]
    except (KeyError, TypeError, ValueError) as error:
        raise ResponseShapeError(f"unexpected completion answer: {error!r:.200}") from error


def _letters(text: str) -> str:
    """*text* as the completion field compares it: folded, lower case, no separators."""
    return "".join(char for char in fold(text).casefold() if char.isalnum())


def _completes(name: str, prefix: str, length: int) -> bool:
    """Whether a word-tail of *name* starts with the first *length* letters of *prefix*."""
    head = _letters(prefix)[:length]
    return any(_letters(tail).startswith(head) for tail in author_inputs(name))


def parse_author_names(answer: Mapping[str, Any], prefix: str, size: int) -> list[str]:
    """The names the prefix completes, from the books the authors branch found, best first.

    A book may have several authors; only those whose name completes the
    whole prefix are kept, else those that complete its first three letters
    (a typo after them), else the book's first author.
    """
    exact = len(_letters(prefix))
    try:
        names: list[str] = []
        for option in _options(answer, "author_complete"):
            authors = [str(author["name"]) for author in option["_source"]["authors"]]
            matching = (
                [name for name in authors if _completes(name, prefix, exact)]
                or [name for name in authors if _completes(name, prefix, FUZZY["prefix_length"])]
                or authors[:1]
            )
            names += [name for name in matching if name not in names]
        return names[:size]
    except (KeyError, TypeError, ValueError) as error:
        raise ResponseShapeError(f"unexpected completion answer: {error!r:.200}") from error


def parse_book_counts(answer: Mapping[str, Any], names: list[str]) -> list[AuthorCompletion]:
    """*names*, in their order, each with its book count (0 if the index no longer has it)."""
    try:
        buckets = answer["aggregations"]["authors"]["names"]["buckets"]
        counts = {str(bucket["key"]): int(bucket["books"]["doc_count"]) for bucket in buckets}
    except (KeyError, TypeError, ValueError) as error:
        raise ResponseShapeError(f"unexpected author counts: {error!r:.200}") from error
    return [AuthorCompletion(name=name, books=counts.get(name, 0)) for name in names]
