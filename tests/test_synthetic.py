"""The synthetic catalogue: deterministic, varied enough to exercise search, and streamed."""

from __future__ import annotations

import collections
import hashlib
import itertools
import tracemalloc

from trio_books.core.synthetic import catalogue_lines, synthetic_books


def digest(count: int, seed: int) -> str:
    return hashlib.sha256(b"".join(catalogue_lines(count, seed))).hexdigest()


def test_same_seed_same_catalogue_other_seed_other_catalogue() -> None:
    assert digest(300, 1) == digest(300, 1)
    assert digest(300, 1) != digest(300, 2)
    # A longer catalogue starts with the shorter one... except for the author
    # pool, which grows with the count: so compare ids and titles only.
    short = [(b.book_id, b.title) for b in synthetic_books(50, 3)]
    assert [b.book_id for b in synthetic_books(50, 3)] == list(range(1, 51))
    assert len(set(short)) == 50


def test_the_catalogue_is_varied_like_a_real_one() -> None:
    books = list(synthetic_books(5000, 7))
    authors_per_book = collections.Counter(len(b.authors) for b in books)
    assert authors_per_book[1] > authors_per_book[2] > 0
    assert max(authors_per_book) >= 12  # anthologies with dozens of authors
    languages = {b.language_code for b in books}
    assert {"eng", "spa", "fre", "jpn"} <= languages
    years = [b.original_publication_year for b in books if b.original_publication_year is not None]
    assert min(years) < 0 < 1800 < max(years)
    tag_counts = collections.Counter(t.slug for b in books for t in b.tags)
    ranked = [count for _slug, count in tag_counts.most_common()]
    assert ranked[0] > 5 * ranked[len(ranked) // 2]  # Zipf-like: a few tags dominate
    author_counts = collections.Counter(a.name for b in books for a in b.authors)
    assert author_counts.most_common(1)[0][1] > 20  # prolific authors recur
    assert any(not name.isascii() for name in author_counts)
    assert all(b.average_rating is not None and 1 <= b.average_rating <= 5 for b in books)


def test_generation_streams_in_bounded_memory() -> None:
    # 60,000 books would take about 30 MB if held; streamed, peak memory stays
    # that of a few books (plus the generator's fixed tables).
    tracemalloc.start()
    try:
        lines = catalogue_lines(60_000, 11)
        first = list(itertools.islice(lines, 1000))
        _current, early_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        written = sum(len(line) for line in lines) + sum(map(len, first))
        _current, late_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written > 25_000_000
    assert late_peak < 2_000_000
    assert late_peak < early_peak + 1_000_000
