"""A generated catalogue for the drills: deterministic, a few thousand books, indexed for one drill.

The drills need a real index with enough variety that searches do real work
(text matches, tag and year filters, facets); they must not touch anyone's
``books`` index, so each drill fills one of its own and deletes it afterwards.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from trio_books.core.books import Author, Book, Tag
from trio_books.core.bulk import bulk_body
from trio_books.core.mapping import index_body
from trio_books.es.connection import ConnectionConfig
from trio_books.es.opening import open_elasticsearch

WORDS = [
    "night",
    "garden",
    "river",
    "stone",
    "winter",
    "shadow",
    "empire",
    "light",
    "storm",
    "glass",
    "silver",
    "forest",
    "queen",
    "ocean",
    "iron",
    "song",
    "fire",
    "city",
    "dream",
    "island",
    "war",
    "peace",
    "house",
    "road",
    "letter",
    "wolf",
    "star",
    "time",
    "machine",
    "ghost",
    "crown",
    "mountain",
    "secret",
    "bridge",
    "harbour",
    "mirror",
    "winds",
    "orchard",
    "clock",
    "lantern",
]
NAMES = [
    "Ada Byron",
    "Ngozi Adichie",
    "Italo Calvino",
    "Toni Morrison",
    "Haruki Murakami",
    "Ursula Le Guin",
    "Jorge Borges",
    "Olga Tokarczuk",
    "Chinua Achebe",
    "Virginia Woolf",
    "Gabriel Marquez",
    "Zadie Smith",
]
TAGS = [
    "fantasy",
    "classics",
    "young-adult",
    "dystopia",
    "film",
    "humour",
    "science-fiction",
    "poetry",
    "war",
    "philosophy",
    "mythology",
    "romance",
    "satire",
    "mystery",
    "history",
    "travel",
]
LANGUAGES = ("eng", "fre", "ger", "spa", "ita", "jpn")
SIZE = 2000


def books(count: int = SIZE, seed: int = 9) -> list[Book]:
    """*count* books, the same for the same *seed*."""
    rng = random.Random(seed)
    made = []
    for book_id in range(1, count + 1):
        title = " ".join(rng.sample(WORDS, rng.randint(1, 4))).title()
        made.append(
            Book(
                book_id=book_id,
                title=title,
                original_title=title if rng.random() < 0.7 else None,
                authors=[Author(name=name) for name in rng.sample(NAMES, rng.randint(1, 2))],
                tags=[Tag(title=slug.title(), slug=slug) for slug in rng.sample(TAGS, 3)],
                original_publication_year=rng.randint(1800, 2020) if rng.random() < 0.95 else None,
                language_code=rng.choice(LANGUAGES),
                average_rating=round(rng.uniform(2.5, 5), 2),
                ratings_count=rng.randint(0, 100_000),
            )
        )
    return made


def search_paths(count: int, seed: int = 5, prefix: str = "/api/v1") -> list[str]:
    """*count* varied search URLs over the generated catalogue: text, tags, years, sorts, pages."""
    rng = random.Random(seed)
    sorts = ("relevance", "year", "-year", "title", "rating")
    paths = []
    for _ in range(count):
        parts = (
            [f"q={'+'.join(rng.sample(WORDS, rng.randint(1, 2)))}"] if rng.random() < 0.8 else []
        )
        if rng.random() < 0.4:
            parts.append(f"tags={rng.choice(TAGS)}")
        if rng.random() < 0.2:
            start = rng.randint(1800, 2000)
            parts.append(f"year_from={start}&year_to={start + 20}")
        if rng.random() < 0.2:
            parts.append(f"language={rng.choice(LANGUAGES)}")
        parts.append(f"sort={rng.choice(sorts)}&size={rng.choice((10, 20, 50))}")
        parts.append(f"page={rng.randint(1, 3)}")
        paths.append(f"{prefix}/search/?{'&'.join(parts)}")
    return paths


@asynccontextmanager
async def drill_index(config: ConnectionConfig, name: str) -> AsyncIterator[str]:
    """An index named for this drill and process, holding :func:`books`; deleted afterwards."""
    index = f"drill-{name}-{os.getpid()}"
    config = config.replace(pool_size=2, max_connections=2, timeout=60.0)
    async with open_elasticsearch(config, "trio") as es:
        await es.delete_index(index)
        await es.create_index(index, index_body())
        await es.bulk(bulk_body(index, books()), refresh=True)
        try:
            yield index
        finally:
            await es.delete_index(index)
