"""Catalogue file formats: telling them apart, and reading raw records with their line numbers.

Readers take text (an iterable of lines or of chunks) and yield
``(line, record)`` pairs, where *record* is a mapping, or a :class:`Malformed`
when the text at that line does not parse. They never hold more than one record
(plus a read-ahead buffer) in memory, so a catalogue of any size streams.
"""

from __future__ import annotations

import csv
import enum
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

# Columns a goodbooks-10k books.csv must have to be read at all.
GOODBOOKS_REQUIRED = ("book_id", "title")


class Format(enum.Enum):
    JSON = "json"
    NDJSON = "ndjson"
    GOODBOOKS_CSV = "goodbooks-csv"


@dataclass(frozen=True)
class Malformed:
    """Text that is not a record at all; ``reason`` says what is wrong."""

    reason: str


Record = Mapping[str, Any]
Read = tuple[int, Record | Malformed]


def detect_format(name: str, head: str) -> Format | None:
    """The format of a file called *name* whose text starts with *head*; ``None`` if unclear.

    The extension decides when it is specific (``.csv``, ``.ndjson``, ``.jsonl``);
    otherwise the first character does: ``[`` is a JSON array, ``{`` NDJSON, and
    a header line naming ``book_id`` and ``title`` a goodbooks CSV.
    """
    lowered = name.lower()
    if lowered.endswith(".csv"):
        return Format.GOODBOOKS_CSV
    if lowered.endswith((".ndjson", ".jsonl")):
        return Format.NDJSON
    content = head.lstrip("\ufeff \t\r\n")
    if content.startswith("["):
        return Format.JSON
    if content.startswith("{"):
        return Format.NDJSON
    first_line = content.split("\n", 1)[0]
    columns = {column.strip().strip('"') for column in first_line.split(",")}
    if all(column in columns for column in GOODBOOKS_REQUIRED):
        return Format.GOODBOOKS_CSV
    return None


def read_ndjson(lines: Iterable[str]) -> Iterator[Read]:
    """One record per line; blank lines are skipped."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield number, Malformed(f"not JSON: {error}")
            continue
        yield number, value if isinstance(value, dict) else Malformed(_not_an_object(value))


def _not_an_object(value: object) -> str:
    return f"not a JSON object but {type(value).__name__}"


class _ArrayReader:
    """Incremental reader of one JSON array, fed by text chunks.

    ``json.JSONDecoder.raw_decode`` decodes one element where it starts; when an
    element runs past the buffered text, more text is read and it is decoded again.
    """

    def __init__(self, chunks: Iterable[str]) -> None:
        self._chunks = iter(chunks)
        self._decoder = json.JSONDecoder()
        self.buffer = ""
        self.pos = 0
        self.line = 1
        self.eof = False

    def more(self) -> bool:
        if self.eof:
            return False
        for chunk in self._chunks:
            if chunk:
                # Drop consumed text so decoding restarts on a short buffer.
                self.buffer = self.buffer[self.pos :] + chunk
                self.pos = 0
                return True
        self.eof = True
        return False

    def advance(self, end: int) -> None:
        self.line += self.buffer.count("\n", self.pos, end)
        self.pos = end

    def skip_space(self) -> str:
        """The next non-space character (without consuming it), or ``""`` at the end."""
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in " \t\r\n\ufeff":
                self.advance(self.pos + 1)
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self.more():
                return ""

    def value(self) -> Any:
        while True:
            try:
                value, end = self._decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError:
                if self.more():
                    continue
                raise
            # A number at the very end of the buffer may go on in the next chunk.
            if end == len(self.buffer) and self.more():
                continue
            self.advance(end)
            return value


def read_json_array(chunks: Iterable[str]) -> Iterator[Read]:
    """The elements of one JSON array, each with the line it starts on.

    A syntax error ends the file: the rest of it cannot be trusted to line up,
    so it is reported once, at its line, as :class:`Malformed`.
    """
    reader = _ArrayReader(chunks)
    if reader.skip_space() != "[":
        yield reader.line, Malformed("not a JSON array (expected '[')")
        return
    reader.advance(reader.pos + 1)
    expect_value = True
    while True:
        char = reader.skip_space()
        if char == "]":
            return
        if char == "":
            yield reader.line, Malformed("the JSON array is not closed (file truncated?)")
            return
        if not expect_value:
            if char != ",":
                yield (
                    reader.line,
                    Malformed(f"expected ',' or ']' but found {char!r}; rest of file skipped"),
                )
                return
            reader.advance(reader.pos + 1)
            expect_value = True
            continue
        line = reader.line
        try:
            value = reader.value()
        except json.JSONDecodeError as error:
            yield line, Malformed(f"not JSON ({error.msg}); rest of file skipped")
            return
        yield line, value if isinstance(value, dict) else Malformed(_not_an_object(value))
        expect_value = False


def read_csv(lines: Iterable[str]) -> Iterator[Read]:
    """Rows of a CSV with a header, as ``{column: text}``, each with the line it starts on.

    Raises:
        ValueError: the header lacks a column of :data:`GOODBOOKS_REQUIRED`.
    """
    reader = csv.reader(iter(lines))
    try:
        header = [column.strip().lstrip("\ufeff") for column in next(reader)]
    except StopIteration:
        return
    missing = [column for column in GOODBOOKS_REQUIRED if column not in header]
    if missing:
        raise ValueError(f"not a goodbooks books.csv: no column {', '.join(missing)}")
    start = reader.line_num + 1
    for row in reader:
        if any(cell.strip() for cell in row):
            if len(row) != len(header):
                yield start, Malformed(f"{len(row)} fields where the header has {len(header)}")
            else:
                yield start, dict(zip(header, row, strict=True))
        start = reader.line_num + 1
