"""The benchmark's catalogue: at least 100,000 generated books, loaded if missing.

:func:`ensure_bench_catalogue` is the one seam. Until the project's own
generator and loader (``python -m trio_books generate`` / ``load --synthetic``)
land, the books come from :func:`stand_in_books` below, a small deterministic
generator kept here only for the benchmark; switch the seam to the real
generator when it exists.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator

from trio_books.core.books import Author, Book, Tag
from trio_books.core.bulk import bulk_body
from trio_books.core.mapping import index_body
from trio_books.es.client import Elasticsearch, open_http_client

BULK_BATCH = 5_000

_WORDS = [
    "shadow",
    "night",
    "river",
    "stone",
    "city",
    "garden",
    "winter",
    "summer",
    "king",
    "queen",
    "war",
    "peace",
    "house",
    "ocean",
    "silver",
    "golden",
    "iron",
    "glass",
    "empire",
    "dragon",
    "wolf",
    "raven",
    "fire",
    "water",
    "wind",
    "storm",
    "island",
    "forest",
    "mountain",
    "valley",
    "secret",
    "letter",
    "journey",
    "return",
    "memory",
    "dream",
    "song",
    "daughter",
    "son",
    "mother",
    "father",
    "sister",
    "brother",
    "friend",
    "stranger",
    "captain",
    "doctor",
    "witch",
    "wizard",
    "thief",
    "hunter",
    "soldier",
    "child",
    "light",
    "dark",
    "blood",
    "bone",
    "heart",
    "crown",
    "sword",
    "shield",
    "road",
    "bridge",
    "tower",
    "castle",
    "harbor",
    "village",
    "north",
    "south",
    "east",
    "west",
    "lost",
    "last",
    "first",
    "little",
    "great",
    "hidden",
    "broken",
    "burning",
    "silent",
    "wild",
    "ancient",
    "modern",
    "eternal",
    "distant",
    "strange",
    "quiet",
    "bright",
    "cold",
    "warm",
    "red",
    "blue",
    "green",
    "black",
    "white",
    "time",
    "world",
    "star",
    "moon",
    "sun",
    "sky",
    "earth",
    "sea",
    "rain",
    "snow",
    "fog",
    "spring",
    "autumn",
    "morning",
    "evening",
    "history",
    "science",
    "poetry",
    "murder",
    "mystery",
    "love",
    "death",
    "life",
    "truth",
    "lies",
    "game",
    "path",
    "door",
    "key",
    "library",
    "book",
    "map",
    "clock",
    "mirror",
    "window",
    "street",
    "market",
    "station",
    "train",
    "ship",
    "garden",
    "orchard",
]
_FIRST = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Frank",
    "Grace",
    "Hugo",
    "Iris",
    "Jonas",
    "Karen",
    "Leo",
    "Maria",
    "Noah",
    "Olga",
    "Paul",
    "Quinn",
    "Rosa",
    "Samuel",
    "Tara",
    "Umar",
    "Vera",
    "Walter",
    "Xenia",
    "Yusuf",
    "Zoe",
    "Ada",
    "Boris",
    "Chloe",
    "Dmitri",
]
_LAST = [
    "Abbott",
    "Brennan",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hoffmann",
    "Ito",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quint",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zimmer",
    "Adler",
    "Becker",
    "Conti",
    "Duarte",
]
_TAGS = [
    "fantasy",
    "classics",
    "young-adult",
    "dystopia",
    "film",
    "between-film",
    "humour",
    "science-fiction",
    "poetry",
    "war",
    "philosophy",
    "mythology",
    "romance",
    "satire",
    "mystery",
    "thriller",
    "history",
    "biography",
    "horror",
    "adventure",
    "crime",
    "drama",
    "essays",
    "travel",
    "children",
    "graphic-novel",
    "short-stories",
    "memoir",
    "politics",
    "religion",
]
_LANGUAGES = ("eng",) * 14 + ("fre", "ger", "spa", "ita", "jpn", "rus")


def stand_in_books(count: int, *, seed: int = 20_240_901) -> Iterator[Book]:
    """*count* generated books, the same for the same seed (a stand-in for the real generator)."""
    rng = random.Random(seed)
    for book_id in range(1, count + 1):
        words = rng.sample(_WORDS, rng.randint(1, 4))
        title = " ".join(word.capitalize() for word in words)
        authors = [
            Author(name=f"{rng.choice(_FIRST)} {rng.choice(_LAST)}")
            for _ in range(rng.choice((1, 1, 1, 2, 3)))
        ]
        # A skewed choice of tags, as real catalogues have: a few tags are common.
        slugs = {_TAGS[min(int(rng.expovariate(0.12)), len(_TAGS) - 1)] for _ in range(3)}
        year = int(rng.gauss(1985, 40)) if rng.random() > 0.02 else rng.randint(-800, 1000)
        yield Book(
            book_id=book_id,
            title=title,
            original_title=title if rng.random() < 0.7 else None,
            isbn13=f"978{book_id:010d}",
            authors=authors,
            tags=[Tag(title=slug.replace("-", " ").title(), slug=slug) for slug in sorted(slugs)],
            original_publication_year=min(year, 2025),
            language_code=rng.choice(_LANGUAGES),
            average_rating=round(rng.uniform(2.5, 4.8), 2),
            ratings_count=int(rng.paretovariate(1.2) * 100),
        )


async def ensure_bench_catalogue(es_url: str, index: str, size: int) -> int:
    """Make sure *index* holds at least *size* books; load them if not. Returns the count."""
    async with open_http_client(timeout=120, max_connections=4) as http:
        es = Elasticsearch(http, [es_url])
        if await es.index_exists(index):
            count = await _count(es, index)
            if count >= size:
                return count
            await es.delete_index(index)  # a partial load of ours: start again
        print(f"bench: loading {size:,} generated books into {index!r}", file=sys.stderr)
        await es.create_index(index, index_body())
        batch: list[Book] = []
        for book in stand_in_books(size):
            batch.append(book)
            if len(batch) == BULK_BATCH:
                await _bulk(es, index, batch)
                batch = []
        if batch:
            await _bulk(es, index, batch)
        await es.refresh(index)
        # One segment-merge pass, so every target later searches the same settled index.
        await es.request("POST", f"/{index}/_forcemerge", params={"max_num_segments": "1"})
        return await _count(es, index)


async def _bulk(es: Elasticsearch, index: str, books: list[Book]) -> None:
    result = await es.bulk(bulk_body(index, books))
    if result.get("errors"):
        raise RuntimeError(f"bulk load into {index!r} reported errors")


async def _count(es: Elasticsearch, index: str) -> int:
    found = await es.request("GET", f"/{index}/_count")
    return int(found["count"])
