"""What each book feeds the completion fields: its title's and authors' prefixes, folded.

The core server has no edge n-grams and no ``search_as_you_type`` field, but
it has the ``completion`` field: an in-memory prefix structure, fuzzy on
request. Each book feeds two of them
(:data:`~trio_books.core.mapping.COMPLETION_FIELDS`):

- ``title_complete``: the title without its series mark, the same without a
  leading article, and the series name, so "hun" finds "The Hunger Games"
  and "mis" finds "Les Misérables";
- ``author_complete``: each author's name and every tail of it from a word
  on, so "coll" finds "Suzanne Collins".

No core analyser folds diacritics, so inputs are folded here (and the
prefix the same way, :mod:`trio_books.core.completion`): "miserables" and
"misérables" complete alike. The weight is the book's ratings count: the
best-known books come first.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # books builds its documents with this module
    from trio_books.core.books import Book

# Leading articles of the catalogue's main languages, dropped for a second input.
ARTICLES = re.compile(
    r"^(?:the|an?|les?|la|l'|une?|des|der|die|das|eine?|el|los|las|il|lo|gli|i|o|os|as)\s*(?<=\s|')",
    re.IGNORECASE,
)
SERIES = re.compile(r"^(?P<title>.*?)\s*\((?P<series>[^()]*?),?\s*#[^()]*\)\s*$")
# Characters a completion input may not hold (Elasticsearch reserves some controls).
CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


# Marks are dropped from letters below this code point (Latin, Greek, Cyrillic); in
# other scripts a mark is part of the letter (Japanese dakuten, a Devanagari virama).
FOLDED_BELOW = "\u0530"


def fold(text: str) -> str:
    """*text* without diacritics or compatibility forms, recomposed (Hangul stays whole)."""
    kept: list[str] = []
    base = ""
    for char in unicodedata.normalize("NFKD", text):
        if unicodedata.category(char) != "Mn":
            base = char
        elif base < FOLDED_BELOW:
            continue
        kept.append(char)
    return unicodedata.normalize("NFC", "".join(kept))


def _distinct(texts: list[str]) -> list[str]:
    cleaned = (" ".join(CONTROLS.sub(" ", fold(text)).split()) for text in texts)
    return list(dict.fromkeys(text for text in cleaned if text))


def title_inputs(title: str) -> list[str]:
    """What a title completes from: itself without series mark, without article, its series."""
    found = SERIES.match(title)
    bare, series = (found["title"], found["series"]) if found else (title, "")
    texts = [bare, ARTICLES.sub("", bare), series, ARTICLES.sub("", series)]
    return _distinct(texts if bare else [title, *texts[2:]])


def author_inputs(name: str) -> list[str]:
    """What an author's name completes from: every tail of it from a word on."""
    words = name.split()
    return _distinct([" ".join(words[at:]) for at in range(len(words))])


def completion_document(book: Book) -> dict[str, Any]:
    """The completion fields of *book*'s document."""
    weight = min(book.ratings_count or 0, 2**31 - 1)
    authors = [text for author in book.authors for text in author_inputs(author.name)]
    document: dict[str, Any] = {
        "title_complete": {"input": title_inputs(book.title), "weight": weight}
    }
    if authors:
        document["author_complete"] = {"input": list(dict.fromkeys(authors)), "weight": weight}
    return document
