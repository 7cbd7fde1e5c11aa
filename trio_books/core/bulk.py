"""Elasticsearch's ``_bulk`` API: bodies built from books, answers read back.

Reading an answer is pure: given the items sent and the HTTP status and body
that came back, :func:`read_bulk_answer` says how many were indexed, which
failed for good (and why), and which to send again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from trio_books.core.books import Book, document_json
from trio_books.errors import ElasticsearchError, ResponseShapeError

# Only what the loader reads: a full answer repeats index name, shards, versions
# and sequence numbers for every document, several times the size of this one.
BULK_FILTER_PATH = "errors,items.*.status,items.*.error.type,items.*.error.reason"


def bulk_action(index: str | None, book: Book) -> bytes:
    """Two NDJSON lines that index *book* under its own id (so reloads are idempotent).

    With *index* ``None`` the action names no index: the body is then posted to
    ``/<index>/_bulk`` and the same bytes serve any index.
    """
    if index is None:
        # The loader's case, a few million times a load: the id is an int, so the
        # line needs no escaping and no encoder.
        action = b'{"index":{"_id":"%d"}}' % book.book_id
    else:
        action = orjson.dumps({"index": {"_index": index, "_id": str(book.book_id)}})
    return action + b"\n" + document_json(book) + b"\n"


def bulk_body(index: str | None, books: Iterable[Book]) -> bytes:
    """One ``_bulk`` body for all of *books*."""
    return b"".join(bulk_action(index, book) for book in books)


@dataclass(frozen=True, slots=True)
class BulkItem:
    """One book ready to send: its id, where it came from, and its two NDJSON lines."""

    book_id: int
    source: str
    line: int
    data: bytes


def bulk_item(book: Book, source: str, line: int) -> BulkItem:
    return BulkItem(book.book_id, source, line, bulk_action(None, book))


@dataclass(frozen=True)
class Chunk:
    """Items sent in one ``_bulk`` request."""

    items: tuple[BulkItem, ...]

    def body(self) -> bytes:
        return b"".join(item.data for item in self.items)

    @property
    def size(self) -> int:
        return sum(len(item.data) for item in self.items)


class ChunkBuilder:
    """Groups items into chunks of at most *max_docs* documents and about *max_bytes* bytes.

    A chunk closes before the item that would take it past *max_bytes*; an item
    larger than *max_bytes* on its own travels alone.
    """

    def __init__(self, max_docs: int, max_bytes: int) -> None:
        if max_docs < 1 or max_bytes < 1:
            raise ValueError("chunks need room for at least one document and one byte")
        self.max_docs = max_docs
        self.max_bytes = max_bytes
        self._items: list[BulkItem] = []
        self._bytes = 0

    def add(self, item: BulkItem) -> list[Chunk]:
        """Take *item*; return the chunks this closes (usually none, at most two)."""
        closed: list[Chunk] = []
        if self._items and self._bytes + len(item.data) > self.max_bytes:
            closed.append(self._take())
        self._items.append(item)
        self._bytes += len(item.data)
        if len(self._items) >= self.max_docs or self._bytes >= self.max_bytes:
            closed.append(self._take())
        return closed

    def flush(self) -> Chunk | None:
        """The last, partly filled chunk, if any."""
        return self._take() if self._items else None

    def _take(self) -> Chunk:
        chunk = Chunk(tuple(self._items))
        self._items, self._bytes = [], 0
        return chunk


@dataclass(frozen=True)
class ItemFailure:
    """An item Elasticsearch refused for good."""

    item: BulkItem
    status: int
    reason: str


@dataclass(frozen=True)
class BulkOutcome:
    """What one ``_bulk`` answer means for the items sent.

    ``retry`` holds the items to send again (all of them when the whole request
    was pushed back), with ``retry_reason`` saying why. ``halves`` are sent in its
    place when the request was too large (413) and can be split; ``too_large`` is
    the one document a 413 answered on its own: no request can carry it.
    """

    indexed: int
    failed: list[ItemFailure]
    retry: Chunk | None = None
    retry_reason: str = ""
    halves: tuple[Chunk, Chunk] | None = None
    too_large: BulkItem | None = None


# Why a document is rejected when a request of it alone was too large.
TOO_LARGE_REASON = "Elasticsearch refused the document as too large (413)"


def split_in_two(chunk: Chunk) -> tuple[Chunk, Chunk]:
    """*chunk*'s items in two chunks of about equal size (it must hold two or more)."""
    if len(chunk.items) < 2:
        raise ValueError("a chunk of one item cannot be split")
    half = len(chunk.items) // 2
    return Chunk(chunk.items[:half]), Chunk(chunk.items[half:])


def is_retryable_status(status: int) -> bool:
    """Statuses after which the same request may succeed: pushed back (429) or a server fault."""
    return status == 429 or status >= 500


def read_bulk_answer(chunk: Chunk, status: int, content: bytes) -> BulkOutcome:
    """Interpret the answer to posting *chunk*.

    Items answered 429 (a full write queue) are retried; other failed items are
    failures, with the error type and reason Elasticsearch gave. A request too
    large for Elasticsearch (413, ``http.max_content_length`` or a proxy's limit)
    is split in two, down to the one document that is too large by itself.

    Raises:
        ElasticsearchError: the request itself was refused (a 4xx other than 429):
            retrying it cannot help.
        ResponseShapeError: a 200 answer that is not a ``_bulk`` answer for *chunk*.
    """
    if is_retryable_status(status):
        return BulkOutcome(0, [], chunk, f"HTTP {status}: {_error_text(content)}")
    if status == 413:
        if len(chunk.items) == 1:
            return BulkOutcome(0, [], too_large=chunk.items[0])
        return BulkOutcome(0, [], halves=split_in_two(chunk))
    if status >= 300:
        raise ElasticsearchError(
            f"Elasticsearch refused a _bulk request ({status}): {_error_text(content)}"
        )
    try:
        answer = orjson.loads(content)
        results = answer["items"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise ResponseShapeError("a _bulk answer without items") from None
    if not isinstance(results, list) or len(results) != len(chunk.items):
        raise ResponseShapeError(f"a _bulk answer for {len(results)} items, not {len(chunk.items)}")
    if answer.get("errors") is False:
        return BulkOutcome(len(chunk.items), [])
    indexed, failed, again = 0, [], []
    for item, result in zip(chunk.items, results, strict=True):
        operation: dict[str, Any] = (
            next(iter(result.values()), {}) if isinstance(result, dict) else {}
        )
        item_status = int(operation.get("status", 0))
        if 200 <= item_status < 300:
            indexed += 1
        elif item_status == 429:
            again.append(item)
        else:
            failed.append(ItemFailure(item, item_status, _item_error(operation.get("error"))))
    retry = Chunk(tuple(again)) if again else None
    return BulkOutcome(indexed, failed, retry, "write queue full (429)" if again else "")


def _item_error(error: object) -> str:
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
    return str(error) if error else "no reason given"


def _error_text(content: bytes) -> str:
    try:
        decoded = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content[:200].decode(errors="replace")
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
        return _item_error(decoded["error"])
    return content[:200].decode(errors="replace")
