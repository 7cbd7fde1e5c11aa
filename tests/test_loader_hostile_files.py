"""The loader on hostile or careless files: a bad cell or record costs little and stops nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loading import live_count, load_files, write_ndjson

from trio_books.es.client import Elasticsearch


def test_a_huge_exponent_in_a_number_cell_is_refused_at_once() -> None:
    # In a process of its own: before the fix, converting it never ended (nor could be stopped).
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from trio_books.core.records import whole_number; "
            "print([whole_number(v) for v in ('1e999999999', '9' * 5000, '1.5e3', '42')])",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip() == "[None, None, 1500, 42]"


async def test_a_nine_character_number_does_not_hang_the_load(
    es: Elasticsearch, index_name: str, tmp_path: Path
) -> None:
    books = write_ndjson(
        tmp_path / "books.ndjson",
        [
            {"book_id": 1, "title": "Before", "ratings_count": 10},
            {"book_id": 2, "title": "Hostile", "ratings_count": "1e999999999"},
            {"book_id": 3, "title": "After", "original_publication_year": "1e999999999"},
        ],
    )
    report, _rejects, _console = await load_files(es, index_name, books)
    assert report.published, report.problem
    assert (report.stats.indexed, report.stats.rejected) == (3, 0)
    assert await live_count(es, index_name) == 3
    hostile = await es.get_source(index_name, "2")
    assert hostile is not None
    assert hostile["ratings_count"] is None  # unusable, as any unusable number is
