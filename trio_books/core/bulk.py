"""Bodies for Elasticsearch's ``_bulk`` API, built from books."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from trio_books.core.books import Book, book_to_document


def bulk_action(index: str, book: Book) -> bytes:
    """Two NDJSON lines that index *book* under its own id (so reloads are idempotent)."""
    action = orjson.dumps({"index": {"_index": index, "_id": str(book.book_id)}})
    return action + b"\n" + orjson.dumps(book_to_document(book)) + b"\n"


def bulk_body(index: str, books: Iterable[Book]) -> bytes:
    """One ``_bulk`` body for all of *books*."""
    return b"".join(bulk_action(index, book) for book in books)
