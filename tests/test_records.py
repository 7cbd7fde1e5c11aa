"""Cleaning messy records into books: pure functions, no server."""

from __future__ import annotations

from collections import Counter

import pytest

from trio_books.core.books import Tag
from trio_books.core.records import (
    LIMITS,
    FieldChanges,
    Rejection,
    book_from_record,
    clean_isbn,
    clean_isbn13,
    clean_year,
    slugify,
    split_authors,
)


@pytest.mark.parametrize(
    ("raw", "year"),
    [
        ("2008.0", 2008),
        (2008.0, 2008),
        ("-720.0", -720),
        (-720, -720),
        ("", None),
        ("nan", None),
        (float("nan"), None),
        ("2008.5", None),
        ("1e12", None),
        ("twenty", None),
        (None, None),
    ],
)
def test_years_written_as_floats_or_negative(raw: object, year: int | None) -> None:
    assert clean_year(raw) == year


def test_isbn10_regains_leading_zeros_only_when_the_check_digit_agrees() -> None:
    assert clean_isbn("439023483") == "0439023483"
    assert clean_isbn("0-439-02348-3") == "0439023483"
    assert clean_isbn("043902348X") is None  # wrong check digit
    assert clean_isbn("080442957X") == "080442957X"


def test_isbn13_in_scientific_notation_is_kept_only_when_trustworthy() -> None:
    # Twelve digits survived: the thirteenth is recomputed from the record's ISBN-10,
    # and kept because it agrees with every surviving digit.
    assert clean_isbn13("9.78043902348e+12", "0439023483") == "9780439023481"
    # No ISBN-10 to recompute from: the lost digit is never invented.
    assert clean_isbn13("9.78043902348e+12", None) is None
    # An ISBN-10 of another book does not match the surviving digits.
    assert clean_isbn13("9.78043902348e+12", "0316015849") is None
    # Rounded up in the twelfth digit (978100000000|9 -> …001): rounding is taken into account.
    assert clean_isbn13("9.78100000001e+12", "1000000001") == "9781000000009"
    # All thirteen digits written out, even with an exponent: kept when valid.
    assert clean_isbn13("9.780439023481e+12") == "9780439023481"
    assert clean_isbn13("9780439023481") == "9780439023481"
    assert clean_isbn13("978-0-439-02348-1") == "9780439023481"
    assert clean_isbn13("9780439023481.0") == "9780439023481"
    assert clean_isbn13("9780439023483") is None  # bad check digit
    assert clean_isbn13("") is None


def test_an_isbn13_with_a_wrong_check_digit_is_repaired_only_from_its_own_isbn10() -> None:
    # The reference catalogue's Hunger Games books: 978 glued to the whole ISBN-10,
    # its check digit included. The first 12 digits agree with the ISBN-10's ISBN-13.
    assert clean_isbn13("9780439023483", "0439023483") == "9780439023481"
    assert clean_isbn13("9780439023491", "0439023491") == "9780439023498"
    assert clean_isbn13("9780439023513", "0439023513") == "9780439023511"
    # Another book's ISBN-10, or a 979 prefix: the digits disagree, nothing is invented.
    assert clean_isbn13("9780439023483", "0316015849") is None
    assert clean_isbn13("9790439023483", "0439023483") is None


def test_a_load_counts_what_it_dropped_and_repaired_field_by_field() -> None:
    changes: FieldChanges = Counter()
    records = [
        {"book_id": 1, "title": "Hunger", "isbn": "439023483", "isbn13": "9780439023483"},
        {"book_id": 2, "title": "Sci", "isbn": "439023483", "isbn13": "9.78043902348e+12"},
        {
            "book_id": 3,
            "title": "Bad",
            "isbn": "123",
            "isbn13": "97804390234",
            "average_rating": "7",
        },
        {"book_id": 4, "title": "Blank", "isbn": "", "isbn13": "nan", "ratings_count": None},
        {
            "book_id": 5,
            "title": "Fine",
            "isbn13": "9780439023481",
            "original_publication_year": "x",
        },
    ]
    books = [book_from_record(record, changes=changes) for record in records]
    assert [book.isbn13 for book in books] == [
        "9780439023481",
        "9780439023481",
        None,
        None,
        "9780439023481",
    ]
    assert changes == Counter(
        {
            ("isbn13", "repaired from ISBN-10"): 2,
            ("isbn", "dropped"): 1,
            ("isbn13", "dropped"): 1,
            ("average_rating", "dropped"): 1,
            ("original_publication_year", "dropped"): 1,
        }
    )


def test_authors_split_on_commas_keeping_suffixes_and_non_ascii() -> None:
    assert split_authors("J.K. Rowling, Mary GrandPré") == ["J.K. Rowling", "Mary GrandPré"]
    assert split_authors("Martin Luther King, Jr., Coretta Scott King") == [
        "Martin Luther King, Jr.",
        "Coretta Scott King",
    ]
    assert split_authors([{"name": " Fyodor  Dostoyevsky "}, {"name": ""}, "Фёдор"]) == [
        "Fyodor Dostoyevsky",
        "Фёдор",
    ]
    many = ", ".join(f"Author {n}" for n in range(60))
    assert len(split_authors(many)) == 60
    assert split_authors("A, A, , B") == ["A", "B"]


def test_slugs_from_names() -> None:
    assert slugify("Young Adult") == "young-adult"
    assert slugify("young-adult") == "young-adult"
    assert slugify("Ciencia Ficción!") == "ciencia-ficcion"
    assert slugify("--1-") == "1"
    assert slugify("日本文学") == "日本文学"
    assert slugify("???") == ""


def test_a_record_is_rejected_only_without_id_or_title() -> None:
    with pytest.raises(Rejection, match="book_id"):
        book_from_record({"title": "No id"})
    with pytest.raises(Rejection, match="book_id"):
        book_from_record({"book_id": "abc", "title": "Bad id"})
    with pytest.raises(Rejection, match="book_id"):
        book_from_record({"book_id": -3, "title": "Negative id"})
    with pytest.raises(Rejection, match="title"):
        book_from_record({"book_id": 1, "title": "  "})
    book = book_from_record(
        {
            "book_id": "7.0",
            "title": "",
            "original_title": "Stands In",
            "isbn13": "9.78043902348e+12",
            "isbn": "439023483",
            "original_publication_year": "-720.0",
            "average_rating": "9.5",
            "ratings_count": "",
            "language_code": " ",
            "tags": [{"title": "Young Adult"}, "young adult", {"title": "Film", "slug": "film"}],
        }
    )
    assert book.book_id == 7
    assert book.title == "Stands In"
    assert book.isbn13 == "9780439023481"
    assert book.original_publication_year == -720
    assert book.average_rating is None
    assert book.ratings_count is None
    assert book.language_code is None
    assert book.tags == [
        Tag(title="Young Adult", slug="young-adult"),
        Tag(title="Film", slug="film"),
    ]


def at_length(field: str, length: int) -> dict[str, object]:
    """A record whose *field* is *length* long (characters, or names and tags)."""
    record: dict[str, object] = {"book_id": 1, "title": "T"}
    if field in ("title", "original_title", "language_code", "small_image_url"):
        record[field] = "a" * length
    elif field == "authors":
        record["authors"] = [f"Author {n}" for n in range(length)]
    elif field == "author":
        record["authors"] = ["a" * length]
    elif field == "tags":
        record["tags"] = [f"tag-{n}" for n in range(length)]
    elif field == "tag":
        record["tags"] = [{"title": "a" * length, "slug": "short"}]
    else:
        record["tags"] = [{"title": "Short", "slug": "a" * length}]
    return record


@pytest.mark.parametrize("field", sorted(LIMITS))
def test_a_field_past_its_limit_rejects_the_record_and_names_the_field(field: str) -> None:
    limit = LIMITS[field]
    book_from_record(at_length(field, limit))  # at the limit: kept whole
    with pytest.raises(Rejection) as rejected:
        book_from_record(at_length(field, limit + 1))
    words = {"author": "author's name", "tag": "tag longer", "tag_slug": "tag slug"}
    assert words.get(field, field) in rejected.value.reason
    assert str(limit) in rejected.value.reason
