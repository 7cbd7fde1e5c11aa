"""Search as you type: titles and author names completed from the first character.

The core server has no edge n-grams and no ``search_as_you_type`` field, but
it has the ``completion`` field: an in-memory prefix structure, fuzzy on
request. Each book feeds two of them (:data:`COMPLETION_MAPPING`):

- ``title_complete``: the title without its series mark, the same without a
  leading article, and the series name, so "hun" finds "The Hunger Games"
  and "mis" finds "Les Misérables";
- ``author_complete``: each author's name and every tail of it from a word
  on, so "coll" finds "Suzanne Collins".

No core analyser folds diacritics, so inputs are folded here (and the
prefix the same way): "miserables" and "misérables" complete alike. The
weight is the book's ratings count: the best-known books come first.

A completion answers two branches run together, as a search's are: titles
(one request) and authors (a completion request, then an aggregation for each
name's book count).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trio_books.core.books import Book
from trio_books.errors import ResponseShapeError

TITLES_BRANCH = "titles"
AUTHORS_BRANCH = "authors"
MAX_PREFIX = 100
MAX_COMPLETE_SIZE = 20
# Completion options are per input, and one book (or a series, or an author)
# has several that share a prefix: ask for more, keep one per book or name.
OVERFETCH = 3
# One typo is forgiven after the first three characters, as a user expects.
FUZZY = {"fuzziness": 1, "prefix_length": 3, "min_length": 4}

COMPLETION_FIELD: dict[str, Any] = {
    "type": "completion",
    "analyzer": "simple",
    # "hungerga" completes "Hunger Games": spaces and punctuation do not count.
    "preserve_separators": False,
    "max_input_length": MAX_PREFIX,
}
COMPLETION_MAPPING: dict[str, Any] = {
    "title_complete": COMPLETION_FIELD,
    "author_complete": COMPLETION_FIELD,
}
# Leading articles of the catalogue's main languages, dropped for a second input.
ARTICLES = re.compile(
    r"^(?:the|an?|les?|la|l'|une?|des|der|die|das|eine?|el|los|las|il|lo|gli|i|o|os|as)\s*(?<=\s|')",
    re.IGNORECASE,
)
SERIES = re.compile(r"^(?P<title>.*?)\s*\((?P<series>[^()]*?),?\s*#[^()]*\)\s*$")
# Characters a completion input may not hold (Elasticsearch reserves some controls).
CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def fold(text: str) -> str:
    """*text* without diacritics or compatibility forms, recomposed (Hangul stays whole)."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(char for char in decomposed if unicodedata.category(char) != "Mn")
    return unicodedata.normalize("NFC", bare)


def _distinct(texts: list[str]) -> list[str]:
    cleaned = (" ".join(CONTROLS.sub(" ", fold(text)).split()) for text in texts)
    return list(dict.fromkeys(text for text in cleaned if text))


def title_inputs(title: str) -> list[str]:
    """What a title completes from: itself without series mark, without article, its series."""
    found = SERIES.match(title)
    bare, series = (found["title"], found["series"]) if found else (title, "")
    texts = [bare, ARTICLES.sub("", bare), series, ARTICLES.sub("", series)]
    return _distinct(texts if bare else [title, *texts[2:]])


def author_inputs(name: str) -> list[str]:
    """What an author's name completes from: every tail of it from a word on."""
    words = name.split()
    return _distinct([" ".join(words[at:]) for at in range(len(words))])


def completion_document(book: Book) -> dict[str, Any]:
    """The completion fields of *book*'s document."""
    weight = min(book.ratings_count or 0, 2**31 - 1)
    authors = [text for author in book.authors for text in author_inputs(author.name)]
    document: dict[str, Any] = {
        "title_complete": {"input": title_inputs(book.title), "weight": weight}
    }
    if authors:
        document["author_complete"] = {"input": list(dict.fromkeys(authors)), "weight": weight}
    return document


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
    return {
        "_source": source,
        "suggest": {
            field: {
                "prefix": fold(prefix),
                "completion": {
                    "field": field,
                    "size": size * OVERFETCH,
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
    """The authors branch's first request: books whose authors complete the prefix."""
    return _suggest_body("author_complete", query.prefix, query.size, ["authors"])


def book_counts_body(names: list[str]) -> dict[str, Any]:
    """The authors branch's second request: how many books each of *names* wrote."""
    return {
        "size": 0,
        "track_total_hits": False,
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


def _completes(name: str, prefix: str) -> bool:
    # The part of the prefix that must match exactly (the fuzzy part is Elasticsearch's).
    head = fold(prefix).casefold()[: FUZZY["prefix_length"]]
    return any(tail.casefold().startswith(head) for tail in author_inputs(name))


def parse_author_names(answer: Mapping[str, Any], prefix: str, size: int) -> list[str]:
    """The names the prefix completes, from the books the authors branch found, best first.

    A book may have several authors; only those whose name completes the
    prefix are kept (the first of the book's, if a typo hides which).
    """
    try:
        names: list[str] = []
        for option in _options(answer, "author_complete"):
            authors = [str(author["name"]) for author in option["_source"]["authors"]]
            matching = [name for name in authors if _completes(name, prefix)] or authors[:1]
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
