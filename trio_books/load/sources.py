"""Where books come from: catalogue files or the synthetic generator, read batch by batch.

This is blocking code (file reads, parsing, validation): the pipeline runs
:meth:`CatalogueReader.next_batch` in a worker thread, one batch at a time.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import os
import reprlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from trio_books.core.books import Tag
from trio_books.core.bulk import BulkItem, bulk_item
from trio_books.core.formats import (
    GOODBOOKS_REQUIRED,
    MAX_RECORD_BYTES,
    Format,
    Malformed,
    Read,
    Record,
    detect_format,
    read_csv,
    read_json_array,
    read_ndjson,
)
from trio_books.core.goodbooks import TagJoin, join_tags, tag_names
from trio_books.core.ids import IdSet
from trio_books.core.records import FieldChanges, Rejection, book_from_record
from trio_books.core.synthetic import synthetic_books
from trio_books.errors import UsageError

READ_CHUNK = 1 << 16


# What a rejects file keeps of one record, at most (bytes of JSON, or characters of repr).
MAX_STORED_RECORD = 16 * 1024
# A repr that stops at a depth and a length (a plain repr recurses without bound).
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist = 8, 64, 64
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 4096, 256, 64


@dataclass(frozen=True)
class Reject:
    """A record not indexed, where it was, and why.

    ``kind`` is ``"invalid"`` (bad input), ``"duplicate"`` (its id came earlier),
    ``"too_large"`` (Elasticsearch refused a request of it alone as too large, 413)
    or ``"elasticsearch"`` (Elasticsearch refused the document).
    """

    kind: str
    source: str
    line: int
    reason: str
    record: Any = None

    def describe(self) -> str:
        return f"{self.source}:{self.line}: {self.kind}: {self.reason}"

    def to_json(self) -> bytes:
        fields = {
            "kind": self.kind,
            "source": self.source,
            "line": self.line,
            "reason": self.reason,
        }
        if self.record is not None:
            try:
                stored: bytes | None = orjson.dumps(self.record, default=str)
            except orjson.JSONEncodeError:  # too deep, an integer past 64 bits…
                stored = None
            if stored is not None and len(stored) <= MAX_STORED_RECORD:
                fields["record"] = orjson.Fragment(stored)
            else:
                # The file must take every reject: a record too big or too odd for
                # JSON is kept as the start of its repr.
                fields["record_truncated"] = _SHORT.repr(self.record)[:MAX_STORED_RECORD]
        return orjson.dumps(fields) + b"\n"


@dataclass
class Batch:
    """What one call of :meth:`CatalogueReader.next_batch` produced.

    ``not_utf8`` counts the byte sequences that were not UTF-8 (each read as
    U+FFFD); ``not_utf8_at`` names where the first few are (``file:line``).
    ``field_changes`` counts the fields of accepted books dropped or repaired.
    """

    items: list[BulkItem] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    read: int = 0
    duplicates: int = 0
    fraction_read: float = 0.0
    not_utf8: int = 0
    not_utf8_at: list[str] = field(default_factory=list)
    field_changes: FieldChanges = field(default_factory=Counter)


# How many places of bytes that are not UTF-8 a load names (the count covers all).
NOT_UTF8_NAMED = 5
_handlers = itertools.count()


@dataclass(frozen=True)
class CatalogueFile:
    path: Path
    format: Format


def open_catalogue_file(path: Path, requested: Format | None) -> CatalogueFile:
    """Check *path* and settle its format (*requested*, or detected when ``None``).

    Raises:
        UsageError: missing or unreadable file, or a format that cannot be told.
    """
    try:
        with path.open("r", encoding="utf-8-sig", errors="replace") as file:
            head = file.read(4096)
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a folder, not a catalogue file") from None
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    chosen = requested or detect_format(path.name, head)
    if chosen is None:
        raise UsageError(
            f"cannot tell the format of {path}: use --format json|ndjson|goodbooks-csv"
        )
    if chosen is Format.GOODBOOKS_CSV:
        # A wrong file is a usage error before any index is made.
        header = next(csv.reader([head.split("\n", 1)[0]]), [])
        missing = [column for column in GOODBOOKS_REQUIRED if column not in header]
        if missing:
            raise UsageError(f"{path} is not a goodbooks books.csv: no column {', '.join(missing)}")
    return CatalogueFile(path, chosen)


def load_tag_join(book_tags: Path, names: Path) -> TagJoin:
    """Read goodbooks' ``book_tags.csv`` and ``tags.csv`` into a :class:`TagJoin`.

    Raises:
        UsageError: a file is missing or lacks the goodbooks columns.
    """
    try:
        with names.open(newline="", encoding="utf-8-sig", errors="replace") as file:
            found = tag_names(csv.DictReader(file))
        with book_tags.open(newline="", encoding="utf-8-sig", errors="replace") as file:
            reader = csv.DictReader(file)
            columns = reader.fieldnames or []
            key = next((c for c in ("goodreads_book_id", "book_id") if c in columns), None)
            if key is None or "tag_id" not in columns:
                raise UsageError(f"{book_tags} is not a goodbooks book_tags.csv")
            return join_tags(reader, found, key=key)
    except FileNotFoundError as error:
        raise UsageError(f"no such file: {error.filename}") from None


class CatalogueReader:
    """Books from catalogue files, cleaned, encoded for ``_bulk``, duplicates dropped.

    Args:
        files: read in order.
        tag_join: tags for goodbooks CSV rows.
    """

    def __init__(
        self,
        files: list[CatalogueFile],
        tag_join: TagJoin | None = None,
        max_record: int = MAX_RECORD_BYTES,
    ) -> None:
        self.files = files
        self.tag_join = tag_join
        self.max_record = max_record
        # Bytes that are not UTF-8 are read as U+FFFD, as before, but counted and
        # located: this reader's own decoding error handler does the counting.
        self._errors = f"trio_books.not_utf8.{next(_handlers)}"
        codecs.register_error(self._errors, self._not_utf8)
        self._not_utf8_count = 0
        self._not_utf8_reported = 0
        self._not_utf8_named = 0
        self.total_bytes = sum(max(1, file.path.stat().st_size) for file in files)
        self._done_bytes = 0
        self._open: io.TextIOWrapper | None = None
        self._ids = IdSet()
        self._records = self._all_records()

    def _fraction_read(self) -> float:
        position = self._done_bytes
        if self._open is not None and not self._open.closed:
            buffered: io.BufferedIOBase = self._open.buffer  # type: ignore[assignment]
            position += buffered.tell()
        return min(1.0, position / self.total_bytes)

    def _not_utf8(self, error: UnicodeError) -> tuple[str, int]:
        assert isinstance(error, UnicodeDecodeError)
        self._not_utf8_count += 1
        return "\ufffd", error.end

    def next_batch(self, size: int) -> Batch | None:
        """Up to *size* records as items and rejects; ``None`` once every file is read."""
        batch = Batch()
        for file, line, record in self._records:
            batch.read += 1
            source = str(file.path)
            # Text is decoded ahead of parsing, so a record read after the handler ran
            # may hold the U+FFFD it wrote; only then is a record searched.
            if (
                self._not_utf8_count
                and self._not_utf8_named < NOT_UTF8_NAMED
                and "\ufffd" in repr(record)
            ):
                self._not_utf8_named += 1
                batch.not_utf8_at.append(f"{source}:{line}")
            if isinstance(record, Malformed):
                batch.rejects.append(Reject("invalid", source, line, record.reason))
            else:
                tags = None
                if self.tag_join is not None and file.format is Format.GOODBOOKS_CSV:
                    tags = self.tag_join.tags_for(record)
                self._accept(batch, source, line, record, tags)
            if batch.read >= size:
                break
        # Measured here, in the reading thread, not from the event loop.
        batch.fraction_read = self._fraction_read()
        batch.not_utf8 = self._not_utf8_count - self._not_utf8_reported
        self._not_utf8_reported = self._not_utf8_count
        return batch if batch.read else None

    def _accept(
        self, batch: Batch, source: str, line: int, record: Record, tags: list[Tag] | None
    ) -> None:
        # Counted apart first: only the changes of a book that is indexed are reported.
        changes: FieldChanges = Counter()
        try:
            book = book_from_record(record, tags=tags, changes=changes)
        except Rejection as rejection:
            batch.rejects.append(Reject("invalid", source, line, rejection.reason, record))
            return
        if not self._ids.add(book.book_id):
            batch.duplicates += 1
            reason = f"book_id {book.book_id} came earlier; the first is kept"
            batch.rejects.append(Reject("duplicate", source, line, reason, record))
            return
        batch.field_changes.update(changes)
        batch.items.append(bulk_item(book, source, line))

    def _all_records(self) -> Iterator[tuple[CatalogueFile, int, Record | Malformed]]:
        for file in self.files:
            with file.path.open(
                "r", encoding="utf-8-sig", errors=self._errors, newline=""
            ) as opened:
                self._open = opened
                for line, record in _read(opened, file.format, self.max_record):
                    yield file, line, record
            self._open = None
            self._done_bytes += max(1, os.path.getsize(file.path))


def _read(opened: IO[str], chosen: Format, max_record: int) -> Iterator[Read]:
    if chosen is Format.NDJSON:
        # A line is read a record's worth at a time at most, never whole.
        return read_ndjson(iter(lambda: opened.readline(max_record + 1), ""), max_record)
    if chosen is Format.JSON:
        return read_json_array(iter(lambda: opened.read(READ_CHUNK), ""), max_record)
    return read_csv(opened, max_record)


class SyntheticReader:
    """Books of the synthetic catalogue, generated as they are asked for (constant memory)."""

    def __init__(self, count: int, seed: int) -> None:
        self.total = count
        self.source = f"synthetic(seed={seed})"
        self._books = enumerate(synthetic_books(count, seed), start=1)
        self._done = 0

    def next_batch(self, size: int) -> Batch | None:
        batch = Batch()
        for number, book in self._books:
            batch.items.append(bulk_item(book, self.source, number))
            batch.read += 1
            if batch.read >= size:
                break
        self._done += batch.read
        batch.fraction_read = self._done / self.total if self.total else 1.0
        return batch if batch.read else None
