"""A synthetic book catalogue, deterministic for a seed, for demos and benchmarks.

Realistic enough to exercise search: titles from word lists (some in a series),
authors who write many books (popularity is skewed, as in real catalogues),
multi-author books and a few anthologies with dozens of authors, years spread
over centuries (a few BCE), several languages and scripts, Zipf-like tag
popularity, ratings and ISBNs with valid check digits.

Books are generated one at a time from one seeded ``random.Random``, so a
catalogue of any size streams in constant memory, and the same seed gives the
same catalogue on every run.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

from trio_books.core.books import Author, Book, Tag
from trio_books.core.records import isbn10_to_13, slugify
from trio_books.core.wordlists import (
    ADJECTIVES,
    FIRST_NAMES,
    FOREIGN_TITLES,
    LANGUAGE_WEIGHTS,
    LANGUAGES,
    LAST_NAMES,
    NOUNS,
    PLACES,
    PLURALS,
    TAG_NAMES,
)

DEFAULT_SEED = 20240601

# Zipf-like popularity: the tag of rank r is chosen in proportion to 1 / r.
TAG_WEIGHTS = tuple(itertools.accumulate(1.0 / rank for rank in range(1, len(TAG_NAMES) + 1)))


def _tag(name: str) -> Tag:
    return Tag(title=name.replace("-", " ").capitalize(), slug=slugify(name))


TAGS = tuple(_tag(name) for name in TAG_NAMES)


def author_name(number: int) -> str:
    """The name of author *number*: distinct for every number."""
    first = FIRST_NAMES[number % len(FIRST_NAMES)]
    last = LAST_NAMES[(number // len(FIRST_NAMES)) % len(LAST_NAMES)]
    generation = number // (len(FIRST_NAMES) * len(LAST_NAMES))
    if generation:
        initials = ""
        while generation:
            generation, letter = divmod(generation - 1, 26)
            initials = chr(ord("A") + letter) + ". " + initials
        return f"{first} {initials}{last}"
    return f"{first} {last}"


class CatalogueGenerator:
    """Books ``1..count`` of the catalogue for *seed*.

    Args:
        count: how many books the catalogue holds (it sizes the author pool).
        seed: the same seed gives the same books.
    """

    def __init__(self, count: int, seed: int = DEFAULT_SEED) -> None:
        if count < 0:
            raise ValueError("count must not be negative")
        self.count = count
        self.seed = seed
        # About four books per author on average, most by a popular few.
        self.authors = max(20, count // 4)

    def __iter__(self) -> Iterator[Book]:
        rng = random.Random(self.seed)
        for book_id in range(1, self.count + 1):
            yield self._book(rng, book_id)

    def _book(self, rng: random.Random, book_id: int) -> Book:
        language = rng.choices(LANGUAGES, LANGUAGE_WEIGHTS)[0]
        title = self._title(rng, language)
        original_title = title if rng.random() < 0.8 else None
        if rng.random() < 0.15:
            series = (
                f"The {rng.choice(NOUNS)} {rng.choice(('Saga', 'Trilogy', 'Chronicles', 'Cycle'))}"
            )
            title = f"{title} ({series}, #{rng.randint(1, 9)})"
        isbn10 = isbn13 = None
        if rng.random() < 0.9:
            first9 = f"{rng.randrange(10**9):09d}"
            check = (11 - sum((10 - i) * int(d) for i, d in enumerate(first9)) % 11) % 11
            isbn10 = first9 + ("X" if check == 10 else str(check))
            isbn13 = isbn10_to_13(isbn10)
        return Book(
            book_id=book_id,
            title=title,
            original_title=original_title,
            isbn=isbn10,
            isbn13=isbn13,
            authors=self._authors(rng),
            tags=self._tags(rng),
            original_publication_year=self._year(rng),
            language_code=language,
            average_rating=round(min(5.0, max(1.0, rng.gauss(3.9, 0.35))), 2),
            ratings_count=int(rng.lognormvariate(7.0, 2.0)),
            small_image_url=f"https://images.example.org/books/{book_id}s.jpg",
        )

    def _title(self, rng: random.Random, language: str) -> str:
        noun, place = rng.choice(NOUNS), rng.choice(PLACES)
        foreign = FOREIGN_TITLES.get(language)
        if foreign is not None:
            return rng.choice(foreign).format(n=noun, p=place)
        shape = rng.randrange(6)
        if shape == 0:
            return f"The {rng.choice(ADJECTIVES)} {noun}"
        if shape == 1:
            return f"{noun} of {rng.choice(PLURALS)}"
        if shape == 2:
            return f"The {noun} of {place}"
        if shape == 3:
            return f"{rng.choice(ADJECTIVES)} {rng.choice(PLURALS)}"
        if shape == 4:
            return f"A {noun} in {place}"
        return f"{rng.choice(FIRST_NAMES)}'s {noun}"

    def _authors(self, rng: random.Random) -> list[Author]:
        roll = rng.random()
        how_many = (
            1 if roll < 0.72 else 2 if roll < 0.9 else 3 if roll < 0.96 else rng.randint(4, 6)
        )
        if roll > 0.995:  # an anthology
            how_many = rng.randint(12, 40)
        numbers: dict[int, None] = {}
        while len(numbers) < how_many:
            # Skewed towards low numbers: a few authors write many of the books.
            numbers[int(self.authors * rng.random() ** 2.5)] = None
        return [Author(name=author_name(number)) for number in numbers]

    def _tags(self, rng: random.Random) -> list[Tag]:
        chosen: dict[int, None] = {}
        wanted = rng.randint(1, 8)
        while len(chosen) < wanted:
            chosen[rng.choices(range(len(TAGS)), cum_weights=TAG_WEIGHTS)[0]] = None
        return [TAGS[index] for index in chosen]

    def _year(self, rng: random.Random) -> int:
        roll = rng.random()
        if roll < 0.8:
            return 2024 - int(abs(rng.gauss(0, 35)))
        if roll < 0.93:
            return rng.randint(1700, 1899)
        if roll < 0.98:
            return rng.randint(1000, 1699)
        return rng.randint(-800, 999)


def synthetic_books(count: int, seed: int = DEFAULT_SEED) -> Iterator[Book]:
    """The first *count* books of the catalogue for *seed*, one at a time."""
    return iter(CatalogueGenerator(count, seed))


def catalogue_lines(count: int, seed: int = DEFAULT_SEED) -> Iterator[bytes]:
    """The catalogue as NDJSON lines (the reference service's shape, plus ratings)."""
    for book in synthetic_books(count, seed):
        yield book.model_dump_json().encode() + b"\n"
