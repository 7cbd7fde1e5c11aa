"""The seeded query list: the same searches, in the same order, for every target.

Words come from the catalogue itself (a seeded random sample of its books), so
the queries find books whatever generator filled the index. Each query has two
faces: the service's ``GET /api/v1/search/?...`` and the Elasticsearch requests
that the service sends for it (what ``es-direct`` sends straight to Elasticsearch).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from trio_books.core.completion import CompleteQuery, authors_body, titles_body
from trio_books.core.query import SearchQuery, search_requests
from trio_books.es.client import Elasticsearch

QUERY_COUNT = 1_000
SAMPLE_BOOKS = 500
_WORD = re.compile(r"[^\W\d_]{3,}")


@dataclass(frozen=True)
class Vocabulary:
    """Words and filter values seen in the catalogue."""

    words: list[str]
    tags: list[str]
    languages: list[str]
    years: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Query:
    """One search: the service's path, and the (method, path, body) requests it sends upstream."""

    path: str
    es_requests: list[tuple[str, str, bytes]]


async def sample_vocabulary(es: Elasticsearch, index: str, seed: int) -> Vocabulary:
    """A seeded random sample of the catalogue's books, taken apart into words and values."""
    answer = await es.search(
        index,
        {
            "size": SAMPLE_BOOKS,
            "query": {"function_score": {"random_score": {"seed": seed, "field": "book_id"}}},
            "sort": ["_score", {"book_id": "asc"}],
            "_source": ["title", "authors", "tags", "language_code", "original_publication_year"],
        },
    )
    words: set[str] = set()
    tags: set[str] = set()
    languages: set[str] = set()
    years: set[int] = set()
    for hit in answer["hits"]["hits"]:
        source = hit["_source"]
        words.update(word.lower() for word in _WORD.findall(source.get("title", "")))
        for author in source.get("authors", []):
            words.update(word.lower() for word in _WORD.findall(author.get("name", ""))[-1:])
        tags.update(tag["slug"] for tag in source.get("tags", []))
        if source.get("language_code"):
            languages.add(source["language_code"])
        if isinstance(source.get("original_publication_year"), int):
            years.add(source["original_publication_year"])
    if not words:
        raise ValueError(f"the index {index!r} has no books to draw query words from")
    return Vocabulary(sorted(words), sorted(tags), sorted(languages), sorted(years))


def search_params(rng: random.Random, vocabulary: Vocabulary) -> dict[str, Any]:
    """Free-text search: one to three catalogue words, sometimes another order or page."""
    params: dict[str, Any] = {"q": " ".join(rng.sample(vocabulary.words, rng.choice((1, 1, 2, 3))))}
    roll = rng.random()
    if roll < 0.1:
        params["sort"] = "rating"
    elif roll < 0.2:
        params["page"] = 2
    return params


def facet_params(rng: random.Random, vocabulary: Vocabulary) -> dict[str, Any]:
    """Browsing by filters: tags, a language, a span of years; facet counts do the work."""
    params: dict[str, Any] = {}
    if vocabulary.tags:
        params["tags"] = rng.sample(
            vocabulary.tags, min(len(vocabulary.tags), rng.choice((1, 1, 2)))
        )
        if len(params["tags"]) > 1 and rng.random() < 0.5:
            params["tags_mode"] = "all"
    if vocabulary.languages and rng.random() < 0.5:
        params["language"] = rng.choice(vocabulary.languages)
    if vocabulary.years and rng.random() < 0.4:
        start = rng.choice(vocabulary.years)
        params["year_from"], params["year_to"] = start, start + rng.choice((5, 10, 50))
    if rng.random() < 0.3:
        params["q"] = rng.choice(vocabulary.words)
    return params


def complete_query(
    rng: random.Random, vocabulary: Vocabulary, index: str, api_prefix: str
) -> Query:
    """Search as you type: the first one to six characters of a catalogue word."""
    word = rng.choice(vocabulary.words)
    query = CompleteQuery(prefix=word[: rng.randint(1, min(6, len(word)))], size=8)
    # es-direct sends the two completion requests; the service then counts the authors' books.
    es_requests = [
        ("POST", f"/{index}/_search", orjson.dumps(body))
        for body in (titles_body(query), authors_body(query))
    ]
    path = f"{api_prefix}/complete?{urlencode(query.model_dump())}"
    return Query(path=path, es_requests=es_requests)


def build_queries(
    vocabulary: Vocabulary,
    workload: str,
    *,
    seed: int,
    index: str,
    facet_size: int,
    api_prefix: str = "/api/v1",
    count: int = QUERY_COUNT,
) -> list[Query]:
    """*count* queries for *workload* (``search``, ``facets``, ``mixed``, ``complete``), the same for a seed.

    ``ping`` is one request, the bare ``GET /`` route, with no Elasticsearch call.
    """
    if workload == "ping":
        return [Query(path="/", es_requests=[])]
    rng = random.Random(seed)
    if workload == "complete":
        return [complete_query(rng, vocabulary, index, api_prefix) for _ in range(count)]
    queries = []
    for number in range(count):
        if workload == "search" or (workload == "mixed" and number % 2 == 0):
            params = search_params(rng, vocabulary)
        else:
            params = facet_params(rng, vocabulary)
        parsed = SearchQuery.model_validate(params)
        es_requests = [
            ("POST", f"/{index}/_search", orjson.dumps(body))
            for body in search_requests(parsed, facet_size).values()
        ]
        path = f"{api_prefix}/search/?{urlencode(params, doseq=True)}"
        queries.append(Query(path=path, es_requests=es_requests))
    return queries
