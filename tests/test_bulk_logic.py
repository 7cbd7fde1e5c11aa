"""Chunking, reading _bulk answers, backoff, id sets and version names: pure, no server."""

from __future__ import annotations

import random
import tracemalloc
from datetime import UTC, datetime

import orjson
import pytest

from trio_books.core.backoff import Backoff
from trio_books.core.books import Author, Book, Tag, book_to_document, document_json
from trio_books.core.bulk import (
    BulkItem,
    Chunk,
    ChunkBuilder,
    bulk_item,
    read_bulk_answer,
    split_in_two,
)
from trio_books.core.ids import IdSet
from trio_books.core.progress import LoadStats, progress_bar, progress_line
from trio_books.core.synthetic import synthetic_books
from trio_books.core.versions import (
    is_version_of,
    swap_actions,
    version_name,
    versions_to_delete,
)
from trio_books.errors import ElasticsearchError, ResponseShapeError


def item(book_id: int, size: int = 10) -> BulkItem:
    return BulkItem(book_id, "f", book_id, b"x" * size)


def test_bulk_items_name_no_index_and_use_the_book_id() -> None:
    data = bulk_item(Book(book_id=42, title="T"), "f", 3).data
    action, document, end = data.split(b"\n")
    assert orjson.loads(action) == {"index": {"_id": "42"}}
    assert orjson.loads(document)["title_sort"] == "t"
    assert end == b""


def test_encoded_documents_are_the_documents() -> None:
    books = [
        *synthetic_books(200),
        Book(book_id=7, title='  Ωmega "quoted"  日本 ', authors=[Author(name="Ana Ñ")]),
        Book(book_id=0, title="T", tags=[Tag(title="Sci-Fi", slug="sci-fi")], average_rating=4.0),
    ]
    for book in books:
        assert orjson.loads(document_json(book)) == book_to_document(book)


def test_chunks_close_by_document_count() -> None:
    builder = ChunkBuilder(max_docs=3, max_bytes=10_000)
    closed = [chunk for n in range(7) for chunk in builder.add(item(n))]
    assert [len(chunk.items) for chunk in closed] == [3, 3]
    last = builder.flush()
    assert last is not None
    assert [i.book_id for i in last.items] == [6]
    assert builder.flush() is None


def test_chunks_close_before_the_item_that_would_pass_the_byte_limit() -> None:
    builder = ChunkBuilder(max_docs=100, max_bytes=25)
    closed = [chunk for n in range(5) for chunk in builder.add(item(n, 10))]
    assert [chunk.size for chunk in closed] == [20, 20]
    # An item bigger than the limit travels alone.
    big = builder.add(item(9, 60))
    assert [len(c.items) for c in big] == [1, 1]
    assert big[1].items[0].book_id == 9


def answer(*statuses: int) -> bytes:
    items = []
    for status in statuses:
        entry: dict[str, object] = {"status": status}
        if status >= 300:
            entry["error"] = {"type": "some_exception", "reason": f"because {status}"}
        items.append({"index": entry})
    return orjson.dumps({"errors": any(s >= 300 for s in statuses), "items": items})


def test_items_pushed_back_are_retried_and_other_failures_kept() -> None:
    chunk = Chunk(tuple(item(n) for n in range(4)))
    outcome = read_bulk_answer(chunk, 200, answer(201, 429, 400, 200))
    assert outcome.indexed == 2
    assert outcome.retry is not None
    assert [i.book_id for i in outcome.retry.items] == [1]
    assert [(f.item.book_id, f.status) for f in outcome.failed] == [(2, 400)]
    assert "some_exception: because 400" in outcome.failed[0].reason


def test_whole_request_pushed_back_or_failing_is_retried_whole() -> None:
    chunk = Chunk((item(1), item(2)))
    for status in (429, 500, 503):
        outcome = read_bulk_answer(chunk, status, b'{"error": {"type": "x", "reason": "busy"}}')
        assert outcome.retry is chunk
        assert outcome.indexed == 0
        assert "busy" in outcome.retry_reason


def test_a_refused_request_or_a_wrong_answer_raises() -> None:
    chunk = Chunk((item(1),))
    with pytest.raises(ElasticsearchError, match="400"):
        read_bulk_answer(chunk, 400, b'{"error": {"type": "parse_exception", "reason": "bad"}}')
    with pytest.raises(ResponseShapeError):
        read_bulk_answer(chunk, 200, answer(201, 201))
    with pytest.raises(ResponseShapeError):
        read_bulk_answer(chunk, 200, b"<html>")


def test_a_request_too_large_is_split_down_to_the_one_document_too_large() -> None:
    chunk = Chunk(tuple(item(n) for n in range(5)))
    outcome = read_bulk_answer(chunk, 413, b"")
    assert outcome.halves is not None
    assert [[i.book_id for i in half.items] for half in outcome.halves] == [[0, 1], [2, 3, 4]]
    assert outcome.retry is None
    assert outcome.failed == []
    assert outcome.indexed == 0
    alone = read_bulk_answer(Chunk((item(7),)), 413, b"")
    assert alone.too_large == item(7)
    assert alone.halves is None
    assert alone.retry is None
    assert alone.failed == []
    with pytest.raises(ValueError, match="cannot be split"):
        split_in_two(Chunk((item(1),)))


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    backoff = Backoff(first=0.1, cap=1.0)
    assert backoff.delay(1, 0.0) == pytest.approx(0.05)
    assert backoff.delay(1, 0.999) == pytest.approx(0.0999, abs=1e-3)
    assert backoff.delay(3, 0.0) == pytest.approx(0.2)
    assert backoff.delay(20, 0.5) == pytest.approx(0.75)


def test_id_set_spots_repeats_in_little_memory() -> None:
    ids = IdSet()
    assert ids.add(5)
    assert not ids.add(5)
    assert ids.add(2**40)
    assert 2**40 in ids
    assert 6 not in ids
    assert -1 not in ids
    assert len(ids) == 2


def test_sparse_ids_stay_compact_and_dense_ones_become_bitmaps() -> None:
    rng = random.Random(7)
    sparse = [rng.getrandbits(63) for _ in range(20_000)]
    dense = list(range(3_000_000, 3_050_000))
    ids = IdSet()
    tracemalloc.start()
    try:
        for identifier in [*sparse, *dense]:
            assert ids.add(identifier)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A bitmap page for each sparse id would be 160 MB; these are a few MB.
    assert peak < 8_000_000, peak
    assert ids.pages <= 2  # the dense run's pages
    assert len(ids) == 70_000
    for identifier in [*sparse[::97], *dense[::97]]:
        assert identifier in ids
        assert not ids.add(identifier)
    assert sparse[0] + 1 not in ids
    assert 2_999_999 not in ids


def test_id_set_agrees_with_a_plain_set_through_merges_and_promotions() -> None:
    rng = random.Random(3)
    ids, plain = IdSet(), set()
    for _ in range(120_000):
        # Sparse ids, a dense run that gets promoted part-way, and repeats of both.
        kind = rng.random()
        if kind < 0.4:
            identifier = rng.getrandbits(63)
        elif kind < 0.8:
            identifier = 5_000_000 + rng.randrange(200_000)
        else:
            identifier = (
                rng.choice((*plain,)) if plain and rng.random() < 0.01 else rng.randrange(50)
            )
        assert ids.add(identifier) == (identifier not in plain), identifier
        plain.add(identifier)
    assert len(ids) == len(plain)
    assert ids.pages > 0
    assert all(identifier in ids for identifier in plain)


def test_versions_sort_by_time_and_the_last_two_are_kept() -> None:
    a = version_name("books", datetime(2024, 1, 1, tzinfo=UTC))
    b = version_name("books", datetime(2024, 1, 2, tzinfo=UTC))
    c = version_name("books", datetime(2024, 1, 2, 0, 0, 0, 1, tzinfo=UTC))
    assert a < b < c
    assert is_version_of("books", a)
    assert not is_version_of("books", "books-archive")
    assert not is_version_of("book", a)
    assert versions_to_delete("books", [c, "books-archive", a, b], live=c) == [a]
    assert versions_to_delete("books", [a, b], live=b) == []


def test_swap_is_one_request_removing_old_targets_and_a_same_named_index() -> None:
    body = swap_actions("books", "books-2", current=["books-1"], concrete=False)
    assert body["actions"] == [
        {"remove": {"index": "books-1", "alias": "books"}},
        {"add": {"index": "books-2", "alias": "books"}},
    ]
    body = swap_actions("books", "books-2", current=[], concrete=True)
    assert {"remove_index": {"index": "books"}} in body["actions"]


def test_progress_shows_rate_and_eta() -> None:
    stats = LoadStats(read=600, accepted=600, indexed=500, total=1000, seconds=5.0)
    assert "100 books/s" in progress_line(stats)
    assert "(50%)" in progress_line(stats)
    assert "ETA 0:05" in progress_bar(stats)
    unknown = LoadStats(read=10)
    assert "ETA ?" in progress_line(unknown)
