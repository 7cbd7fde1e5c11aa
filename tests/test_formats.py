"""Telling formats apart and reading records with their line numbers: pure, no server."""

from __future__ import annotations

import io

import orjson
import pytest

from trio_books.core.formats import (
    Format,
    Malformed,
    detect_format,
    read_csv,
    read_json_array,
    read_ndjson,
)
from trio_books.core.goodbooks import join_tags, tag_names


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("books.csv", "anything", Format.GOODBOOKS_CSV),
        ("books.jsonl", "", Format.NDJSON),
        ("books.json", '  [\n{"book_id": 1}', Format.JSON),
        ("books.json", '{"book_id": 1}\n{"book_id": 2}', Format.NDJSON),
        ("books.txt", "\ufeffbook_id,goodreads_book_id,title\n1,2,x", Format.GOODBOOKS_CSV),
        ("books.txt", "hello", None),
    ],
)
def test_detection_by_extension_then_content(name: str, head: str, expected: Format | None) -> None:
    assert detect_format(name, head) is expected


def test_ndjson_lines_keep_their_numbers() -> None:
    text = '{"book_id": 1}\n\n{broken\n[1, 2]\n{"book_id": 4}\n'
    read = list(read_ndjson(io.StringIO(text)))
    assert [line for line, _ in read] == [1, 3, 4, 5]
    assert isinstance(read[1][1], Malformed)
    assert isinstance(read[2][1], Malformed)
    assert read[3][1] == {"book_id": 4}


def small_chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096])
def test_json_array_streams_elements_with_start_lines(chunk: int) -> None:
    text = '[\n  {"book_id": 1,\n   "title": "a"},\n  {"book_id": 2, "title": "b\\nc"},\n  7,\n  {"book_id": 12345}\n]\n'
    read = list(read_json_array(small_chunks(text, chunk)))
    assert [line for line, _ in read] == [2, 4, 5, 6]
    assert read[0][1] == {"book_id": 1, "title": "a"}
    assert isinstance(read[2][1], Malformed)
    assert read[3][1] == {"book_id": 12345}


def test_a_json_syntax_error_is_reported_at_its_line() -> None:
    text = '[\n{"book_id": 1},\n{"book_id": 2,,},\n{"book_id": 3}\n]'
    read = list(read_json_array(small_chunks(text, 5)))
    assert read[0] == (2, {"book_id": 1})
    assert read[1][0] == 3
    assert isinstance(read[1][1], Malformed)
    assert len(read) == 2


def test_a_truncated_json_array_is_reported() -> None:
    read = list(read_json_array(['[{"book_id": 1}, {"book_id"']))
    assert read[0] == (1, {"book_id": 1})
    assert isinstance(read[1][1], Malformed)


def test_csv_rows_start_lines_survive_quoted_newlines() -> None:
    text = 'book_id,title,authors\n1,"Two\nlines","A, B"\n2,Short,C\n3,too,many,fields\n'
    read = list(read_csv(io.StringIO(text)))
    assert read[0] == (2, {"book_id": "1", "title": "Two\nlines", "authors": "A, B"})
    assert read[1] == (4, {"book_id": "2", "title": "Short", "authors": "C"})
    assert read[2][0] == 5
    assert isinstance(read[2][1], Malformed)


def test_csv_without_the_goodbooks_columns_is_refused() -> None:
    with pytest.raises(ValueError, match="title"):
        list(read_csv(io.StringIO("book_id,name\n1,x\n")))


def test_goodbooks_tags_top_per_book_by_count_one_per_slug() -> None:
    names = tag_names(
        [
            {"tag_id": "1", "tag_name": "to-read"},
            {"tag_id": "2", "tag_name": "fantasy"},
            {"tag_id": "3", "tag_name": "Fantasy"},
            {"tag_id": "4", "tag_name": "young-adult"},
            {"tag_id": "5", "tag_name": "???"},
        ]
    )
    assert 5 not in names
    rows = [
        {"goodreads_book_id": "10", "tag_id": "1", "count": "500"},
        {"goodreads_book_id": "10", "tag_id": "2", "count": "300"},
        {"goodreads_book_id": "10", "tag_id": "3", "count": "200"},
        {"goodreads_book_id": "10", "tag_id": "4", "count": "100"},
        {"goodreads_book_id": "11", "tag_id": "4", "count": "-1"},
    ]
    join = join_tags(rows, names, key="goodreads_book_id", top=2)
    tags = join.tags_for({"goodreads_book_id": "10"})
    assert [tag.slug for tag in tags] == ["to-read", "fantasy"]
    assert tags[1].title == "Fantasy"
    assert join.tags_for({"goodreads_book_id": "11"}) == []
    assert orjson.loads(orjson.dumps([t.model_dump() for t in tags]))[0]["title"] == "To Read"
