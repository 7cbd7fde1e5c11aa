"""The loader on hostile or careless files: a bad cell or record costs little and stops nothing."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from loading import live_count, load_files, write_ndjson

from trio_books.errors import UsageError
from trio_books.es.client import Elasticsearch
from trio_books.load.report import RejectsLog
from trio_books.load.sources import MAX_STORED_RECORD, Reject


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


# ---------------------------------------------------------------- the rejects file


def a_reject(line: int = 2) -> Reject:
    return Reject("invalid", "books.ndjson", line, "no title", {"book_id": line})


def test_an_existing_rejects_file_stops_the_load_before_it_starts(tmp_path: Path) -> None:
    books = write_ndjson(tmp_path / "books.ndjson", [{"book_id": 1}])
    earlier = tmp_path / "rejects.ndjson"
    earlier.write_text("an earlier load's rejects\n")
    done = subprocess.run(
        [sys.executable, "-m", "trio_books", "load", str(books), "--rejects", str(earlier)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # Refused before any connection: nothing listens here.
        env={**os.environ, "TRIO_BOOKS_ES_URLS": "http://127.0.0.1:9"},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"python -m trio_books: error: {earlier} exists: move it, name another --rejects, "
        "or pass --rejects-overwrite"
    ]
    assert earlier.read_text() == "an earlier load's rejects\n"


def test_the_rejects_file_is_never_written_through_a_symbolic_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("not the loader's\n")
    link = tmp_path / "rejects.ndjson"
    link.symlink_to(victim)
    for overwrite in (False, True):
        rejects = RejectsLog(link, io.StringIO(), overwrite=overwrite)
        with pytest.raises(UsageError):
            rejects.check() if not overwrite else rejects._write([a_reject()])
    assert victim.read_text() == "not the loader's\n"


def test_a_rejects_file_made_during_the_load_is_not_clobbered(tmp_path: Path) -> None:
    path = tmp_path / "rejects.ndjson"
    rejects = RejectsLog(path, io.StringIO())
    rejects.check()
    path.write_text("someone else's\n")  # between the check and the first reject
    with pytest.raises(UsageError, match="appeared during the load"):
        rejects._write([a_reject()])
    assert path.read_text() == "someone else's\n"
    fresh = RejectsLog(tmp_path / "fresh.ndjson", io.StringIO())
    fresh._write([a_reject(2)])
    fresh._write([a_reject(3)])
    lines = (tmp_path / "fresh.ndjson").read_bytes().splitlines()
    assert [orjson.loads(line)["line"] for line in lines] == [2, 3]


def deeply_nested(depth: int) -> dict[str, object]:
    record: dict[str, object] = {}
    for _ in range(depth):
        record = {"x": record}
    return record


@pytest.mark.parametrize(
    ("record", "kept"),
    [
        ({"book_id": 7, "title": ""}, "record"),
        ({"book_id": 7, "title": "x" * 100_000}, "record_truncated"),  # a huge cell
        ({"book_id": 2**70}, "record_truncated"),  # past what JSON numbers here hold
        (deeply_nested(1000), "record_truncated"),  # past orjson's depth
    ],
)
def test_every_reject_is_written_however_odd_its_record(
    tmp_path: Path, record: dict[str, object], kept: str
) -> None:
    rejects = RejectsLog(tmp_path / "rejects.ndjson", io.StringIO())
    rejects._write([Reject("invalid", "books.ndjson", 4, "no title", record)])
    (line,) = (tmp_path / "rejects.ndjson").read_bytes().splitlines()
    assert len(line) < MAX_STORED_RECORD + 1024
    written = orjson.loads(line)
    assert (written["line"], written["reason"]) == (4, "no title")
    assert kept in written
    if kept == "record":
        assert written["record"] == record
