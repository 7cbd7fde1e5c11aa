"""Raw catalogue records made into books: cleaning the mess real files carry.

A record is rejected (:class:`Rejection`) only when it has no usable id, no
title, or a field longer than :data:`LIMITS` allows. Every other field is cleaned to what can be trusted and otherwise left
empty: years written as floats (``2008.0``) or negative, ISBNs whose leading
zeros or last digits a spreadsheet ate, blank optional fields, author lists as
one comma-separated string. Nothing here invents a digit: a damaged ISBN-13 is
kept only when it can be recomputed from a valid ISBN-10 of the same record and
agrees with every digit that survived. What was dropped or repaired is counted
(:data:`DROPPED`, :data:`REPAIRED`), so a load can say so.
"""

from __future__ import annotations

import functools
import math
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from trio_books.core.books import Book, Tag
from trio_books.core.query import MAX_TAG_LENGTH

# Years outside this range are typing accidents, not publication dates (and the
# index stores years as 32-bit integers).
YEAR_RANGE = range(-9999, 10_000)
# Name parts that belong to the previous name when authors are comma-separated.
NAME_SUFFIXES = frozenset(
    {"jr", "jr.", "sr", "sr.", "ii", "iii", "iv", "phd", "ph.d.", "md", "m.d."}
)
BLANKS = frozenset({"", "nan", "null", "none", "NaN", "NULL", "None", "NA", "N/A"})
_PLAIN_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_ISBN_NOISE = re.compile(r"[\s-]")
_ISBN10 = re.compile(r"\d{9}[\dX]")
_ISBN10_SHORT = re.compile(r"\d{1,9}[\dX]")
_ISBN13 = re.compile(r"97[89]\d{10}")
_ISBN13_WRITTEN = re.compile(r"\d{13}(?:\.0+)?")
_SCIENTIFIC = re.compile(r"(\d)\.(\d+)[eE]\+?(\d+)")
# A number a data file may write for a whole one ("7", "7.0", "1.2e3"): at most
# 19 digits before and after the point and a two-digit exponent, so converting
# it stays cheap whatever the cell holds (a long has 19 digits).
_WHOLE_NUMBER = re.compile(r"[+-]?\d{1,19}(?:\.\d{0,19})?(?:[eE][+-]?\d{1,2})?")


# The longest text each field may hold, and the most names and tags a book may have.
# Real books stay far inside them (goodbooks' longest title has 262 characters); past
# them a record is a mistake or an attack, and is rejected rather than cut: a cut
# would change the data without a word. A tag slug has the API's own limit.
LIMITS = {
    "title": 1000,
    "original_title": 1000,
    "author": 300,
    "authors": 100,
    "tag": 100,
    "tag_slug": MAX_TAG_LENGTH,
    "tags": 200,
    "language_code": 35,
    "small_image_url": 2048,
}


# What a load reports of a field it had to change: a value given but not usable
# (the field left empty), or a damaged value recomputed from another field.
DROPPED = "dropped"
REPAIRED = "repaired from ISBN-10"
# A tally of changes by (field, what happened): ("isbn13", REPAIRED) -> 3.
FieldChanges = Counter[tuple[str, str]]


class Rejection(ValueError):
    """A record that cannot become a book; ``reason`` says why, for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------- scalar fields


def text(value: object) -> str | None:
    """A stripped string, or ``None`` for blanks, ``NaN`` and non-text values."""
    if type(value) is str:  # the common case, first and fast
        stripped = value.strip()
        return None if stripped in BLANKS else stripped
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    return None if stripped in BLANKS or stripped.lower() in BLANKS else stripped


def whole_number(value: object) -> int | None:
    """An integer written as ``7``, ``"7"``, ``7.0`` or ``"7.0"``; ``None`` otherwise."""
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    raw = text(value)
    if raw is None or not _WHOLE_NUMBER.fullmatch(raw):
        # Checked before converting: int(Decimal("1e999999999")), nine characters,
        # would build a billion-digit integer (the load would hang, uninterruptibly).
        return None
    try:
        number = Decimal(raw)
    except InvalidOperation:
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def clean_year(value: object) -> int | None:
    """A publication year; BCE years are negative. ``None`` when unusable."""
    year = whole_number(value)
    return year if year is not None and year in YEAR_RANGE else None


def clean_rating(value: object) -> float | None:
    """An average rating between 0 and 5."""
    if type(value) is float or type(value) is int:
        rating = float(value)
        return round(rating, 2) if 0.0 <= rating <= 5.0 else None
    raw = text(value)
    if raw is None:
        return None
    try:
        rating = float(raw)
    except ValueError:
        return None
    return round(rating, 2) if 0.0 <= rating <= 5.0 else None


def clean_count(value: object) -> int | None:
    """A non-negative count that fits the index's ``long``."""
    count = whole_number(value)
    return count if count is not None and 0 <= count < 2**63 else None


# ---------------------------------------------------------------- ISBNs


# Check-digit weights; map() over them keeps the per-digit work in C.
_ISBN10_WEIGHTS = range(10, 1, -1)
_ISBN13_WEIGHTS = (1, 3) * 6


def _isbn10_valid(digits: str) -> bool:
    if not _ISBN10.fullmatch(digits):
        return False
    last = 10 if digits[9] == "X" else int(digits[9])
    total: int = sum(map(operator.mul, _ISBN10_WEIGHTS, map(int, digits[:9]))) + last
    return total % 11 == 0


def _isbn13_check_digit(first12: str) -> str:
    total: int = sum(map(operator.mul, _ISBN13_WEIGHTS, map(int, first12)))
    return str((10 - total % 10) % 10)


def _isbn13_valid(digits: str) -> bool:
    return bool(_ISBN13.fullmatch(digits)) and _isbn13_check_digit(digits[:12]) == digits[12]


def clean_isbn(value: object) -> str | None:
    """An ISBN-10 with a valid check digit.

    Leading zeros lost to a numeric column (``439023483``) are restored only
    when the check digit then agrees.
    """
    raw = text(value)
    if raw is None:
        return None
    digits = _ISBN_NOISE.sub("", raw).upper()
    if digits.endswith(".0"):
        digits = digits[:-2]
    if len(digits) < 10 and _ISBN10_SHORT.fullmatch(digits):
        digits = digits.rjust(10, "0")
    return digits if _isbn10_valid(digits) else None


def isbn10_to_13(isbn10: str) -> str:
    """The ISBN-13 (prefix 978) of a valid ISBN-10."""
    first12 = "978" + isbn10[:9]
    return first12 + _isbn13_check_digit(first12)


def clean_isbn13(value: object, isbn10: str | None = None) -> str | None:
    """An ISBN-13 that can be trusted, or ``None``.

    Plain 13-digit values must carry a valid check digit, unless *isbn10*
    (already cleaned) converts to an ISBN-13 with the same first 12 digits: then
    only the check digit was wrong (a catalogue that glued ``978`` to the whole
    ISBN-10, its check digit included), and the computed one replaces it. Values
    a spreadsheet wrote in scientific notation (``9.78043902348e+12``) lost their
    last digits; they are kept only when all 13 digits survived, or when *isbn10*
    converts to an ISBN-13 that rounds to exactly the surviving digits.
    """
    return isbn13_and_repair(value, isbn10)[0]


def isbn13_and_repair(value: object, isbn10: str | None = None) -> tuple[str | None, bool]:
    """:func:`clean_isbn13`, and whether the digits came from *isbn10* rather than *value*."""
    raw = text(value)
    if raw is None:
        return None, False
    compact = _ISBN_NOISE.sub("", raw)
    derived = isbn10_to_13(isbn10) if isbn10 is not None else None
    if _ISBN13_WRITTEN.fullmatch(compact):
        digits = compact[:13]
        if _isbn13_valid(digits):
            return digits, False
        # Every digit but the check digit agrees with the ISBN-10: nothing invented.
        if derived is not None and derived[:12] == digits[:12]:
            return derived, True
        return None, False
    match = _SCIENTIFIC.fullmatch(compact)
    if match is None:
        return None, False
    significant = match[1] + match[2].rstrip("0")
    if int(match[3]) != 12:
        return None, False
    if len(significant) >= 13:
        digits = (match[1] + match[2]).ljust(13, "0")[:13]
        return (digits if _isbn13_valid(digits) else None), False
    if derived is None:
        return None, False
    written = Decimal(compact)
    exponent = Decimal(1).scaleb(12 - len(significant) + 1)
    for rounding in (ROUND_HALF_EVEN, ROUND_HALF_UP):
        if Decimal(derived).quantize(exponent, rounding=rounding) == written:
            return derived, True
    return None, False


# ---------------------------------------------------------------- names and tags


def split_authors(value: object) -> list[str]:
    """Author names from a list or one comma-separated string, in order, without repeats.

    ``"Martin Luther King, Jr."`` stays one name: suffixes join the name before them.
    """
    parts: list[str]
    if isinstance(value, str):
        parts = value.split(",")
    elif type(value) is list and all(type(item) is dict for item in value):
        # The JSON shape, checked without the ABCs' slower isinstance.
        parts = [cleaned for item in value if (cleaned := text(item.get("name")))]
    elif isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
        parts = []
        for item in value:
            name = item.get("name") if isinstance(item, Mapping) else item
            if cleaned := text(name):
                parts.append(cleaned)
    else:
        return []
    names: list[str] = []
    for part in parts:
        name = " ".join(part.split())
        if not name:
            continue
        if len(name) > LIMITS["author"]:
            raise Rejection(f"an author's name longer than {LIMITS['author']} characters")
        if names and name.lower() in NAME_SUFFIXES:
            names[-1] = f"{names[-1]}, {name}"
        elif name not in names:
            names.append(name)
    return names


@functools.lru_cache(maxsize=65_536)
def slugify(name: str) -> str:
    """A tag slug: accents dropped, case folded, every run of other characters one ``-``.

    Letters of any script are kept (``"日本文学"`` stays itself), so a slug is
    empty only for names made of punctuation alone.
    """
    if _PLAIN_SLUG.fullmatch(name):
        return name
    decomposed = unicodedata.normalize("NFKD", name)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", "-", bare.casefold()).strip("-")


def tag_title(name: str) -> str:
    """A title for a tag known only by a slug-like name (``"young-adult"`` -> ``"Young Adult"``)."""
    words = re.sub(r"[-_\s]+", " ", name).strip()
    return words[:1].upper() + words[1:] if words != words.lower() else words.title()


@functools.lru_cache(maxsize=65_536)
def make_tag(title: str, slug: str) -> Tag:
    """The tag (shared: tags are frozen, and real catalogues repeat a few thousand of them)."""
    return Tag(title=title, slug=slug)


def clean_tags(value: object) -> list[Tag]:
    """Tags from ``[{title, slug}]``, ``[{title}]`` or ``[name, ...]``, one per slug."""
    if type(value) is not list and (
        not isinstance(value, Iterable) or isinstance(value, str | bytes | Mapping)
    ):
        return []
    tags: dict[str, Tag] = {}
    for item in value:
        if type(item) is dict or isinstance(item, Mapping):
            title = text(item.get("title")) or text(item.get("name"))
            slug = text(item.get("slug"))
        else:
            title, slug = text(item), None
        if title is None and slug is None:
            continue
        slug = slugify(slug or title or "")
        if slug and slug not in tags:
            tags[slug] = tag = make_tag(title or tag_title(slug), slug)
            check_tag(tag)
    return list(tags.values())


def check_tag(tag: Tag) -> None:
    """Raise :class:`Rejection` when *tag*'s title or slug is past :data:`LIMITS`."""
    if len(tag.title) > LIMITS["tag"]:
        raise Rejection(f"a tag longer than {LIMITS['tag']} characters")
    if len(tag.slug) > LIMITS["tag_slug"]:
        raise Rejection(f"a tag slug longer than {LIMITS['tag_slug']} characters")


# ---------------------------------------------------------------- whole records


def book_id(value: object) -> int:
    """The record's id, or :class:`Rejection`."""
    number = whole_number(value)
    if number is None or not 0 <= number < 2**63:
        raise Rejection(
            f"no usable book_id ({value!r})" if value not in (None, "") else "no book_id"
        )
    return number


def book_from_record(
    record: Mapping[str, Any],
    *,
    tags: list[Tag] | None = None,
    changes: FieldChanges | None = None,
) -> Book:
    """A book from a record in the reference service's shape (JSON, NDJSON) or a CSV row.

    Args:
        record: field name to raw value; missing fields are empty.
        tags: tags found elsewhere (a goodbooks tag join); they replace ``record["tags"]``.
        changes: when given, counts each field given but dropped or repaired.

    Raises:
        Rejection: no usable id, or no title (``original_title`` stands in for a
            missing ``title``).
    """
    if not isinstance(record, Mapping):
        raise Rejection(f"not an object but {type(record).__name__}")
    identifier = book_id(record.get("book_id"))
    original_title = text(record.get("original_title"))
    title = text(record.get("title")) or original_title
    if title is None:
        raise Rejection("no title")
    isbn = clean_isbn(record.get("isbn"))
    isbn13, repaired = isbn13_and_repair(record.get("isbn13"), isbn)
    fields: dict[str, Any] = {
        "book_id": identifier,
        "title": title,
        "original_title": original_title,
        "isbn": isbn,
        "isbn13": isbn13,
        "authors": [{"name": name} for name in split_authors(record.get("authors"))],
        "tags": _joined(tags) if tags is not None else clean_tags(record.get("tags")),
        "original_publication_year": clean_year(record.get("original_publication_year")),
        "language_code": text(record.get("language_code")),
        "average_rating": clean_rating(record.get("average_rating")),
        "ratings_count": clean_count(record.get("ratings_count")),
        "small_image_url": text(record.get("small_image_url")),
    }
    check_lengths(fields)
    if changes is not None:
        _count_changes(record, fields, changes)
        if repaired:
            changes["isbn13", REPAIRED] += 1
    try:
        return Book.model_validate(fields)
    except ValidationError as error:  # pragma: no cover - every field is cleaned above
        raise Rejection(f"invalid: {error.errors()[0]['msg']}") from None


# Fields cleaned from one raw value each: given but left empty means dropped.
_CLEANED = ("isbn", "isbn13", "original_publication_year", "average_rating", "ratings_count")


def _count_changes(
    record: Mapping[str, Any], fields: Mapping[str, Any], changes: FieldChanges
) -> None:
    for name in _CLEANED:
        if fields[name] is None and text(record.get(name)) is not None:
            changes[name, DROPPED] += 1


def _joined(tags: list[Tag]) -> list[Tag]:
    """Tags found elsewhere (a goodbooks join), held to the same limits."""
    for tag in tags:
        check_tag(tag)
    return tags


def check_lengths(fields: Mapping[str, Any]) -> None:
    """Raise :class:`Rejection` naming the first field of *fields* past :data:`LIMITS`.

    Names and tags are checked one by one as they are cleaned (:func:`split_authors`,
    :func:`clean_tags`); here, the texts and how many names and tags there are.
    """
    for name in ("title", "original_title", "language_code", "small_image_url"):
        value = fields[name]
        if value is not None and len(value) > LIMITS[name]:
            raise Rejection(f"{name} longer than {LIMITS[name]} characters")
    if len(fields["authors"]) > LIMITS["authors"]:
        raise Rejection(f"more than {LIMITS['authors']} authors")
    if len(fields["tags"]) > LIMITS["tags"]:
        raise Rejection(f"more than {LIMITS['tags']} tags")
