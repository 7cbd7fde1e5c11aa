"""The loader on hostile or careless files: a bad cell or record costs little and stops nothing."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from loading import live_count, load_files, write_ndjson

from trio_books.core.formats import read_json_array
from trio_books.core.progress import summary
from trio_books.errors import UsageError
from trio_books.es.client import Elasticsearch
from trio_books.load.pipeline import LoadOptions, load_catalogue
from trio_books.load.report import RejectsLog
from trio_books.load.sources import (
    MAX_STORED_RECORD,
    CatalogueReader,
    Reject,
    open_catalogue_file,
)


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


# ---------------------------------------------------------------- one bad record among good ones


def good(book_id: int) -> dict[str, object]:
    return {"book_id": book_id, "title": f"Good {book_id}", "authors": "A. Writer"}


def json_array(*elements: bytes) -> bytes:
    """A JSON array with one element a line, so each starts on a known line."""
    return b"[\n" + b",\n".join(elements) + b"\n]\n"


def csv_file(*rows: str) -> bytes:
    return ("book_id,title,authors\n" + "".join(f"{row}\n" for row in rows)).encode()


DEEP = b'{"book_id": 9, "title": "Deep", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
HUGE_INT = b'{"book_id": 9, "title": "Digits", "ratings_count": ' + b"9" * 5000 + b"}"
LONG = b'{"book_id": 9, "title": "Long", "x": "' + b"y" * 300_000 + b'"}'


def good_json(book_id: int) -> bytes:
    return orjson.dumps(good(book_id))


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        # Line 3 of each file holds the bad record, between good ones.
        ("deep.json", json_array(good_json(1), DEEP, good_json(2)), "nested too deep"),
        ("digits.json", json_array(good_json(1), HUGE_INT, good_json(2)), "4300 digits"),
        ("long.json", json_array(good_json(1), LONG, good_json(2)), "over 200,000 bytes"),
        ("deep.ndjson", b"\n".join([b"", good_json(1), DEEP, good_json(2)]), "depth limit"),
        ("digits.ndjson", b"\n".join([b"", good_json(1), HUGE_INT, good_json(2)]), "not JSON"),
        ("long.ndjson", b"\n".join([b"", good_json(1), LONG, good_json(2)]), "over 200,000"),
        (
            "field.csv",
            csv_file("1,Good 1,A. Writer", f'9,"{"z" * 140_000}",A. Writer', "2,Good 2,B. Writer"),
            "field larger than field limit",
        ),
        (
            "long.csv",
            csv_file("1,Good 1,A. Writer", f"9,{'z' * 120_000},{'w' * 120_000}", "2,Good 2,B"),
            "over 200,000 bytes",
        ),
    ],
)
async def test_one_bad_record_is_a_reject_and_the_good_ones_load(
    es: Elasticsearch, index_name: str, tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    rejects = RejectsLog(tmp_path / "rejects.ndjson", io.StringIO())
    reader = CatalogueReader([open_catalogue_file(path, None)], max_record=200_000)
    report = await load_catalogue(es, reader, LoadOptions(index_name), rejects)
    assert report.published, report.problem
    assert (report.stats.indexed, report.stats.rejected) == (2, 1)
    assert await live_count(es, index_name) == 2
    assert rejects.path is not None
    (written,) = [orjson.loads(line) for line in rejects.path.read_bytes().splitlines()]
    assert (written["kind"], written["line"]) == ("invalid", 3), written
    assert reason in written["reason"], written


def test_a_long_json_element_is_decoded_once_not_again_for_every_chunk() -> None:
    # Before: each 64 KiB chunk of a long element started its decoding over
    # (quadratic); now the element is scanned to its end, then decoded once.
    element = b'{"book_id": 1, "title": "T", "x": "' + b'\\"[{' * 250_000 + b'"}'
    text = json_array(element, good_json(2)).decode()
    chunks = [text[at : at + 65_536] for at in range(0, len(text), 65_536)]
    calls = 0
    original = json.JSONDecoder.raw_decode

    def counting(self: json.JSONDecoder, s: str, idx: int = 0) -> tuple[object, int]:
        nonlocal calls
        calls += 1
        return original(self, s, idx)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json.JSONDecoder, "raw_decode", counting)
        read = list(read_json_array(chunks))
    assert [(line, record["book_id"]) for line, record in read] == [(2, 1), (3, 2)]  # type: ignore[index]
    assert len(chunks) > 10
    assert calls <= 4


async def test_bytes_that_are_not_utf8_are_counted_and_located(
    es: Elasticsearch, index_name: str, tmp_path: Path
) -> None:
    path = tmp_path / "books.ndjson"
    lines = [good_json(1), good_json(2).replace(b"Good", b"G\xe9od"), good_json(3)]
    lines.append(good_json(4).replace(b"Writer", b"Wr\xff\xfeiter"))
    path.write_bytes(b"\n".join(lines) + b"\n")
    rejects = RejectsLog(None, io.StringIO())
    reader = CatalogueReader([open_catalogue_file(path, None)])
    report = await load_catalogue(es, reader, LoadOptions(index_name), rejects)
    assert report.published, report.problem
    assert report.stats.indexed == 4  # kept, with U+FFFD where the bytes were
    assert report.stats.not_utf8 >= 2
    assert report.stats.not_utf8_at == [f"{path}:2", f"{path}:4"]
    assert f"first at {path}:2, {path}:4" in summary(report.stats)
    stored = await es.get_source(index_name, "2")
    assert stored is not None
    assert stored["title"] == "G\ufffdod 2"


# ---------------------------------------------------------------- memory


# Runs the loader and prints its exit code and peak RSS. A child's ru_maxrss
# starts from its parent's RSS at the fork (Linux keeps it across exec), so the
# loader is started from this small process, not from the test run (hundreds of MB).
MEASURE = """
import os, subprocess, sys
process = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)
_pid, status, usage = os.wait4(process.pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, file=sys.stderr)
"""


def load_and_measure(path: Path, alias: str, es_url: str) -> tuple[int, dict[str, Any], float]:
    """``python -m trio_books load`` on *path*: its exit code, its summary, its peak RSS (MB)."""
    load = [sys.executable, "-m", "trio_books", "load", str(path), "--index", alias, "--json"]
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *load],
        capture_output=True,
        check=False,
        cwd=path.parent,
        env={**os.environ, "TRIO_BOOKS_ES_URLS": es_url},
    )
    code, peak_kib = done.stderr.decode().split()[-2:]
    return int(code), orjson.loads(done.stdout.splitlines()[-1]), int(peak_kib) / 1024


async def test_a_million_books_with_random_64_bit_ids_load_in_bounded_memory(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    count = 1_000_000
    rng = random.Random(11)
    ids = {rng.getrandbits(63) for _ in range(count)}
    path = tmp_path / "sparse.ndjson"
    with path.open("wb") as file:
        file.writelines(b'{"book_id":%d,"title":"B"}\n' % identifier for identifier in ids)
    code, summary, peak_mb = await trio.to_thread.run_sync(
        load_and_measure, path, index_name, es_url
    )
    assert code == 0, summary
    assert summary["indexed"] == len(ids)
    print(f"1,000,000 random 63-bit ids: the loader's peak RSS was {peak_mb:.0f} MB")
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"
    assert await live_count(es, index_name) == len(ids)
