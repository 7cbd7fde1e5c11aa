"""More like this: books that share a book's title words, its authors or its tags.

``more_like_this`` picks a document's most telling terms and searches for
them, but only over the document's own fields: the authors and tags are
nested documents, which it does not see. So the book is read first, and the
query is built from it: ``more_like_this`` over the title words (given as
text), the same authors, the same tags (weighted less: a tag is a weaker
tie than an author), the book itself excluded. A catalogue is small beside
the corpora ``more_like_this`` was made for, so a word that appears once
still counts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trio_books.core.books import Book
from trio_books.core.mapping import COMPLETION_FIELDS

MAX_SIMILAR = 50
SIMILAR_BRANCH = "similar"
# The read of the book the search starts from, before it under the same deadline.
BOOK_BRANCH = "book"


class SimilarQuery(BaseModel):
    """The query string of ``GET /books/{id}/similar``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int = Field(default=10, ge=1, le=MAX_SIMILAR, description="How many books, 1-50.")


class SimilarResponse(BaseModel):
    """Books like the one asked about, most alike first (never the book itself)."""

    results: list[Book]


def similar_body(book: Book, size: int) -> dict[str, Any]:
    """The search for books like *book*."""
    titles = [text for text in (book.title, book.original_title) if text]
    should: list[dict[str, Any]] = [
        {
            "more_like_this": {
                "fields": ["title", "original_title"],
                "like": titles,
                "min_term_freq": 1,
                "min_doc_freq": 1,
                "max_query_terms": 25,
            }
        }
    ]
    if book.authors:
        names = [author.name for author in book.authors]
        should.append(
            {
                "nested": {
                    "path": "authors",
                    "score_mode": "max",
                    "query": {
                        "bool": {
                            "should": [
                                {"match_phrase": {"authors.name": {"query": name, "boost": 2}}}
                                for name in names
                            ]
                        }
                    },
                }
            }
        )
    if book.tags:
        should.append(
            {
                "nested": {
                    "path": "tags",
                    # max: many shared tags never outweigh an author or the title.
                    "score_mode": "max",
                    "query": {
                        "terms": {"tags.slug": [tag.slug for tag in book.tags], "boost": 0.2}
                    },
                }
            }
        )
    return {
        "query": {
            "bool": {
                "should": should,
                "minimum_should_match": 1,
                "must_not": [{"ids": {"values": [str(book.book_id)]}}],
            }
        },
        "size": size,
        "_source": {"excludes": [*COMPLETION_FIELDS, "title_sort"]},
    }
