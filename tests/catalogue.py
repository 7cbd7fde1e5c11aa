"""The test catalogue: 32 books written for the tests, and helpers that count over it.

Chosen to exercise search: several multi-author books, shared and unique tags
(including ``between-film`` beside ``film``, to prove exact slugs), a spread of
years with negative ones (ancient works), and several languages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from trio_books.core.books import Author, Book, Tag

TAG_TITLES = {
    "fantasy": "Fantasy",
    "classics": "Classics",
    "young-adult": "Young Adult",
    "dystopia": "Dystopia",
    "film": "Film",
    "between-film": "Between Film",
    "humour": "Humour",
    "science-fiction": "Science Fiction",
    "poetry": "Poetry",
    "war": "War",
    "philosophy": "Philosophy",
    "mythology": "Mythology",
    "romance": "Romance",
    "satire": "Satire",
    "one-of-a-kind": "One of a Kind",
}

# (id, title, original title, authors, year, language, tags, rating, ratings count)
ROWS: list[
    tuple[
        int, str, str | None, list[str], int | None, str | None, list[str], float | None, int | None
    ]
] = [
    (
        1,
        "The Hunger Games (The Hunger Games, #1)",
        "The Hunger Games",
        ["Suzanne Collins"],
        2008,
        "eng",
        ["young-adult", "dystopia", "between-film"],
        4.34,
        4780653,
    ),
    (
        2,
        "Catching Fire (The Hunger Games, #2)",
        "Catching Fire",
        ["Suzanne Collins"],
        2009,
        "eng",
        ["young-adult", "dystopia"],
        4.30,
        1831039,
    ),
    (
        3,
        "Harry Potter and the Sorcerer's Stone (Harry Potter, #1)",
        "Harry Potter and the Philosopher's Stone",
        ["J.K. Rowling", "Mary GrandPré"],
        1997,
        "eng",
        ["fantasy", "young-adult", "film"],
        4.44,
        4602479,
    ),
    (
        4,
        "Harry Potter and the Chamber of Secrets (Harry Potter, #2)",
        "Harry Potter and the Chamber of Secrets",
        ["J.K. Rowling", "Mary GrandPré"],
        1998,
        "eng",
        ["fantasy", "young-adult"],
        4.37,
        1779331,
    ),
    (
        5,
        "Good Omens",
        "Good Omens: The Nice and Accurate Prophecies of Agnes Nutter, Witch",
        ["Terry Pratchett", "Neil Gaiman"],
        1990,
        "eng",
        ["fantasy", "humour"],
        4.25,
        400000,
    ),
    (
        6,
        "The Odyssey",
        "Ὀδύσσεια",
        ["Homer", "Robert Fagles", "Bernard Knox"],
        -720,
        "grc",
        ["classics", "poetry", "mythology"],
        3.73,
        670326,
    ),
    (
        7,
        "The Iliad",
        "Ἰλιάς",
        ["Homer", "Robert Fagles"],
        -750,
        "grc",
        ["classics", "poetry", "war", "mythology"],
        3.83,
        273565,
    ),
    (
        8,
        "The Aeneid",
        "Aeneis",
        ["Virgil", "Robert Fagles"],
        -19,
        "lat",
        ["classics", "poetry", "mythology"],
        3.81,
        100000,
    ),
    (
        9,
        "Meditations",
        "Τὰ εἰς ἑαυτόν",
        ["Marcus Aurelius"],
        180,
        "grc",
        ["classics", "philosophy"],
        4.21,
        90000,
    ),
    (
        10,
        "Don Quixote",
        "El ingenioso hidalgo don Quijote de la Mancha",
        ["Miguel de Cervantes Saavedra", "Edith Grossman"],
        1605,
        "spa",
        ["classics", "humour", "satire"],
        3.87,
        170000,
    ),
    (
        11,
        "Les Misérables",
        "Les Misérables",
        ["Victor Hugo"],
        1862,
        "fre",
        ["classics", "romance", "film"],
        4.15,
        560000,
    ),
    (
        12,
        "The Trial",
        "Der Process",
        ["Franz Kafka"],
        1925,
        "ger",
        ["classics", "philosophy"],
        3.98,
        150000,
    ),
    (
        13,
        "The Metamorphosis",
        "Die Verwandlung",
        ["Franz Kafka"],
        1915,
        "ger",
        ["classics"],
        3.79,
        400000,
    ),
    (
        14,
        "Nineteen Eighty-Four",
        "Nineteen Eighty-Four",
        ["George Orwell"],
        1949,
        "eng",
        ["classics", "dystopia", "science-fiction"],
        4.14,
        2500000,
    ),
    (
        15,
        "Animal Farm",
        "Animal Farm: A Fairy Story",
        ["George Orwell"],
        1945,
        "eng",
        ["classics", "satire", "dystopia"],
        3.87,
        1800000,
    ),
    (
        16,
        "Brave New World",
        "Brave New World",
        ["Aldous Huxley"],
        1932,
        "eng",
        ["classics", "dystopia", "science-fiction"],
        3.97,
        1000000,
    ),
    (
        17,
        "The Hobbit",
        "The Hobbit, or There and Back Again",
        ["J.R.R. Tolkien"],
        1937,
        "eng",
        ["fantasy", "classics", "between-film"],
        4.25,
        2000000,
    ),
    (
        18,
        "The Fellowship of the Ring",
        "The Fellowship of the Ring",
        ["J.R.R. Tolkien"],
        1954,
        "eng",
        ["fantasy", "classics", "film"],
        4.34,
        1900000,
    ),
    (
        19,
        "Dune",
        "Dune",
        ["Frank Herbert"],
        1965,
        "eng",
        ["science-fiction", "classics"],
        4.22,
        600000,
    ),
    (
        20,
        "Foundation",
        "Foundation",
        ["Isaac Asimov"],
        1951,
        "eng",
        ["science-fiction"],
        4.17,
        300000,
    ),
    (
        21,
        "War and Peace",
        "Война и мир",
        ["Leo Tolstoy", "Louise Maude", "Aylmer Maude"],
        1869,
        "rus",
        ["classics", "war", "romance"],
        4.11,
        200000,
    ),
    (
        22,
        "Crime and Punishment",
        "Преступление и наказание",
        ["Fyodor Dostoyevsky"],
        1866,
        "rus",
        ["classics", "philosophy"],
        4.21,
        500000,
    ),
    (
        23,
        "One Hundred Years of Solitude",
        "Cien años de soledad",
        ["Gabriel García Márquez", "Gregory Rabassa"],
        1967,
        "spa",
        ["classics", "romance"],
        4.04,
        500000,
    ),
    (
        24,
        "The Little Prince",
        "Le Petit Prince",
        ["Antoine de Saint-Exupéry"],
        1943,
        "fre",
        ["classics", "philosophy"],
        4.28,
        1000000,
    ),
    (
        25,
        "Norwegian Wood",
        "ノルウェイの森",
        ["Haruki Murakami", "Jay Rubin"],
        1987,
        "jpn",
        ["romance"],
        4.01,
        300000,
    ),
    (
        26,
        "The Tale of Genji",
        "源氏物語",
        ["Murasaki Shikibu", "Royall Tyler"],
        1010,
        "jpn",
        ["classics", "romance"],
        3.70,
        20000,
    ),
    (
        27,
        "The Art of War",
        "孫子兵法",
        ["Sun Tzu", "Thomas Cleary"],
        -500,
        "zho",
        ["classics", "philosophy", "war"],
        3.97,
        200000,
    ),
    (
        28,
        "Discworld: Guards! Guards!",
        "Guards! Guards!",
        ["Terry Pratchett"],
        1989,
        "eng",
        ["fantasy", "humour", "satire"],
        4.31,
        150000,
    ),
    (29, "Neverwhere", "Neverwhere", ["Neil Gaiman"], 1996, "eng", ["fantasy"], 4.17, 250000),
    (
        30,
        "The Hitchhiker's Guide to the Galaxy",
        "The Hitchhiker's Guide to the Galaxy",
        ["Douglas Adams"],
        1979,
        "eng",
        ["science-fiction", "humour", "film"],
        4.20,
        1200000,
    ),
    (
        31,
        "Collected Fictions",
        None,
        ["Jorge Luis Borges", "Andrew Hurley"],
        1998,
        "spa",
        ["one-of-a-kind"],
        4.58,
        20000,
    ),
    (32, "An Untitled Manuscript", None, ["Anonymous"], None, None, [], None, None),
    (
        33,
        "Beowulf",
        "Bēowulf",
        ["Anonymous", "Seamus Heaney"],
        1000,
        "ang",
        ["classics", "poetry", "mythology"],
        3.46,
        150000,
    ),
    (
        34,
        "The Hunger Angel",
        "Atemschaukel",
        ["Herta Müller", "Philip Boehm"],
        2009,
        "ger",
        ["war"],
        3.90,
        5000,
    ),
]


def make_book(
    row: tuple[
        int, str, str | None, list[str], int | None, str | None, list[str], float | None, int | None
    ],
) -> Book:
    book_id, title, original, authors, year, language, tags, rating, count = row
    return Book(
        book_id=book_id,
        title=title,
        original_title=original,
        isbn=f"{book_id:09d}X" if book_id % 2 else None,
        isbn13=f"978{book_id:010d}",
        authors=[Author(name=name) for name in authors],
        tags=[Tag(title=TAG_TITLES[slug], slug=slug) for slug in tags],
        original_publication_year=year,
        language_code=language,
        average_rating=rating,
        ratings_count=count,
        small_image_url=f"https://example.org/covers/{book_id}.jpg",
    )


BOOKS: list[Book] = [make_book(row) for row in ROWS]
BY_ID = {book.book_id: book for book in BOOKS}


def where(
    *,
    tags: Iterable[str] = (),
    tags_mode: str = "any",
    year: int | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
    language: str | None = None,
    books: Iterable[Book] = BOOKS,
) -> list[Book]:
    """The fixture's books that pass the given filters (an independent re-statement of them)."""
    wanted = set(tags)
    chosen = []
    for book in books:
        slugs = {tag.slug for tag in book.tags}
        if wanted and (not (wanted & slugs) if tags_mode == "any" else not wanted <= slugs):
            continue
        y = book.original_publication_year
        if year is not None and y != year:
            continue
        if year_from is not None and (y is None or y < year_from):
            continue
        if year_to is not None and (y is None or y > year_to):
            continue
        if language is not None and book.language_code != language:
            continue
        chosen.append(book)
    return chosen


def counts(books: Iterable[Book], key: Callable[[Book], Iterable[object]]) -> dict[object, int]:
    """How many of *books* have each value that *key* gives."""
    counter: Counter[object] = Counter()
    for book in books:
        counter.update(set(key(book)))
    return dict(counter)


def tag_counts(books: Iterable[Book]) -> dict[object, int]:
    return counts(books, lambda b: [t.slug for t in b.tags])


def year_counts(books: Iterable[Book]) -> dict[object, int]:
    return counts(
        books,
        lambda b: [] if b.original_publication_year is None else [b.original_publication_year],
    )


def language_counts(books: Iterable[Book]) -> dict[object, int]:
    return counts(books, lambda b: [] if b.language_code is None else [b.language_code])
