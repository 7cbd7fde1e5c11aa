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
import re
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

# The largest record a file may hold, in bytes of its text; the loader's default.
MAX_RECORD_BYTES = 1 << 20

# What matters to finding where a JSON value ends, outside and inside strings.
_STRUCTURE = re.compile(r'[\[\]{}",]')
_IN_STRING = re.compile(r'["\\]')


def text_bytes(text: str) -> int:
    """How many bytes *text* takes in UTF-8 (without encoding it when it is ASCII)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def too_large(max_record: int) -> Malformed:
    return Malformed(f"a record over {max_record:,} bytes")


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


def read_ndjson(lines: Iterable[str], max_record: int = MAX_RECORD_BYTES) -> Iterator[Read]:
    """One record per line; blank lines are skipped.

    *lines* may cut a line longer than *max_record* into pieces (as
    ``readline(limit)`` does): such a line is one reject, and is never joined.
    """
    number, long_line = 0, False
    for line in lines:
        if long_line:
            # The rest of a line already rejected.
            long_line = not line.endswith("\n")
            continue
        number += 1
        if len(line) > max_record or text_bytes(line.rstrip("\r\n")) > max_record:
            long_line = not line.endswith("\n")
            yield number, too_large(max_record)
            continue
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

    ``json.JSONDecoder.raw_decode`` decodes an element where it starts, in C. An
    element that runs past the buffered text is first scanned to its end (the
    scan goes on where it stopped as text arrives, so a long element costs time
    in proportion to its length) and then decoded once. An element longer than
    the record limit is scanned past, not kept.
    """

    def __init__(self, chunks: Iterable[str], max_record: int) -> None:
        self._chunks = iter(chunks)
        self._decoder = json.JSONDecoder()
        self.max_record = max_record
        self.buffer = ""
        self.pos = 0
        self.line = 1
        self.eof = False

    def more(self) -> int | None:
        """Read a chunk, dropping consumed text; the offset dropped, or ``None`` at the end."""
        if self.eof:
            return None
        for chunk in self._chunks:
            if chunk:
                # Drop consumed text so decoding restarts on a short buffer.
                dropped = self.pos
                self.buffer = self.buffer[self.pos :] + chunk
                self.pos = 0
                return dropped
        self.eof = True
        return None

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
            if self.more() is None:
                return ""

    def value(self) -> Any:
        """The element at ``pos``, a :class:`Malformed` for one that cannot be kept.

        Raises:
            json.JSONDecodeError: the text is not JSON (or ends inside the element).
        """
        try:
            value, end = self._decoder.raw_decode(self.buffer, self.pos)
        except json.JSONDecodeError:
            if self.eof:
                raise
        except (ValueError, RecursionError) as error:
            # Too many digits for an int, or nested too deep: valid JSON, not a record.
            return self._skip(error)
        else:
            # A number at the very end of the buffer may go on in the next chunk.
            if end < len(self.buffer) or self.eof:
                return self._take(value, end)
        end_or_none = self._scan()
        if end_or_none is None:
            return too_large(self.max_record)
        try:
            value, end = self._decoder.raw_decode(self.buffer, self.pos)
        except json.JSONDecodeError:
            raise
        except (ValueError, RecursionError) as error:
            return self._skip(error)
        return self._take(value, end)

    def _take(self, value: Any, end: int) -> Any:
        size = (
            text_bytes(self.buffer[self.pos : end]) if end - self.pos > self.max_record // 4 else 0
        )
        self.advance(end)
        return too_large(self.max_record) if size > self.max_record else value

    def _skip(self, error: BaseException) -> Malformed:
        if self._scan() is not None:
            # Past the element's own text, to the ',' or ']' that follows it.
            self.advance(self._end)
        reason = "nested too deep" if isinstance(error, RecursionError) else str(error)
        return Malformed(f"not a record: {reason}")

    def _scan(self) -> int | None:
        """Find where the element at ``pos`` ends, reading text as needed.

        Returns the end (also kept as ``_end``), with the element's text in the
        buffer from ``pos``; or ``None`` when the element is longer than the
        record limit: then it has been read past, and ``pos`` is at its end.

        Raises:
            json.JSONDecodeError: the file ends inside the element.
        """
        depth, at, in_string, start, dropped_all = 0, self.pos, False, self.pos, False
        while True:
            found = (_IN_STRING if in_string else _STRUCTURE).search(self.buffer, at)
            if found is not None:
                char, at = found[0], found.end()
                if in_string:
                    if char == '"':
                        in_string = False
                    else:
                        at += 1  # the escaped character, whatever it is
                    continue
                if char == '"':
                    in_string = True
                    continue
                if char in "[{":
                    depth += 1
                    continue
                if depth == 0:  # the ',' or ']' after the element
                    return self._ended(found.start(), dropped_all)
                if char in "]}":
                    depth -= 1
                    if depth == 0:
                        return self._ended(at, dropped_all)
                continue
            at = max(at, len(self.buffer))
            if dropped_all or at - start > self.max_record:
                # Too long to keep: count its lines and let its text go.
                dropped_all = True
                self.advance(min(at, len(self.buffer)))
                start = self.pos
            dropped = self.more()
            if dropped is None:
                raise json.JSONDecodeError("the file ends inside a record", self.buffer, at)
            at -= dropped
            start -= dropped

    def _ended(self, end: int, dropped_all: bool) -> int | None:
        self._end = end
        if dropped_all:
            self.advance(end)
            return None
        return end


def read_json_array(chunks: Iterable[str], max_record: int = MAX_RECORD_BYTES) -> Iterator[Read]:
    """The elements of one JSON array, each with the line it starts on.

    A syntax error ends the file: the rest of it cannot be trusted to line up,
    so it is reported once, at its line, as :class:`Malformed`. An element that
    is valid JSON but no record (too long, nested too deep, an integer of
    thousands of digits) is reported at its line and the file goes on.
    """
    reader = _ArrayReader(chunks, max_record)
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
        if isinstance(value, Malformed):
            yield line, value
        else:
            yield line, value if isinstance(value, dict) else Malformed(_not_an_object(value))
        expect_value = False


def read_csv(lines: Iterable[str], max_record: int = MAX_RECORD_BYTES) -> Iterator[Read]:
    """Rows of a CSV with a header, as ``{column: text}``, each with the line it starts on.

    A row with a field past the csv module's limit (128 KiB), or longer than
    *max_record* in all, is reported as :class:`Malformed`, and reading goes on.

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
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            # The reader starts afresh on the next line.
            yield start, Malformed(f"not a CSV row: {error}")
        else:
            if any(cell.strip() for cell in row):
                if len(row) != len(header):
                    yield start, Malformed(f"{len(row)} fields where the header has {len(header)}")
                elif sum(map(text_bytes, row)) > max_record:
                    yield start, too_large(max_record)
                else:
                    yield start, dict(zip(header, row, strict=True))
        start = reader.line_num + 1
