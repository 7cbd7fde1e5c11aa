"""The benchmark's ``complete`` workload, its pure parts: queries, the stand-in's answer, the goal."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

from trio_books.bench.goals import complete_goals
from trio_books.bench.latency_standin import canned_complete_answer, canned_search_answer
from trio_books.bench.options import BenchOptions, Upstream
from trio_books.bench.queries import Vocabulary, build_queries
from trio_books.bench.targets import TARGETS
from trio_books.core.completion import parse_author_names, parse_book_counts, parse_titles

VOCABULARY = Vocabulary(["dune", "war", "peace", "collins"], ["fantasy"], ["eng"], [1950])


def test_complete_queries_are_seeded_prefixes_of_catalogue_words() -> None:
    first = build_queries(VOCABULARY, "complete", seed=3, index="i", facet_size=20, count=200)
    assert first == build_queries(
        VOCABULARY, "complete", seed=3, index="i", facet_size=20, count=200
    )
    prefixes = []
    for query in first:
        url = urlsplit(query.path)
        assert url.path == "/api/v1/complete"
        params = parse_qs(url.query)
        assert params["size"] == ["8"]
        prefixes.append(params["prefix"][0])
        # What the service sends first: the titles and the authors completion requests.
        bodies = [orjson.loads(body) for _, _, body in query.es_requests]
        assert [sorted(body["suggest"]) for body in bodies] == [
            ["title_complete"],
            ["author_complete"],
        ]
    assert all(any(word.startswith(p) for word in VOCABULARY.words) for p in prefixes)
    assert {len(p) for p in prefixes} == {1, 2, 3, 4, 5, 6}


def test_the_standin_answers_parse_as_every_completion_branch() -> None:
    suggestions = orjson.loads(canned_complete_answer())
    assert suggestions["hits"]["hits"] == []
    assert len(parse_titles(suggestions, 8)) == 8
    names = parse_author_names(suggestions, "s", 8)
    assert names
    # The counts are an aggregation, asked with "size":0: the facets' answer holds them.
    counts = orjson.loads(canned_search_answer(page=0))
    assert [author.books for author in parse_book_counts(counts, names)] == [2] * len(names)
    # A search's books come without the index's completion inputs, as from Elasticsearch.
    search = orjson.loads(canned_search_answer())
    assert "suggest" not in search
    assert not {"title_complete", "author_complete"} & set(search["hits"]["hits"][0]["_source"])


def test_the_fastapi_peer_takes_no_part_in_completion() -> None:
    assert not TARGETS["fastapi"].takes("complete")
    assert not TARGETS["fastapi-tls"].takes("complete")
    assert TARGETS["trio"].takes("complete")
    assert TARGETS["asyncio"].takes("complete")


def test_the_goal_is_the_completions_median_over_the_searchs() -> None:
    options = BenchOptions(
        targets=("trio", "asyncio"),
        concurrency=(1, 8, 64),
        duration=1,
        workers=1,
        workloads=("search", "complete"),
        upstream=Upstream(),
        out=Path("out"),
        rounds=3,
        warmup=0,
        index="books",
        catalogue_size=100_000,
        seed=1,
        quick=True,
    )
    summary = {
        ("complete", "trio", 8): {"p50_ms": 1.5},
        ("search", "trio", 8): {"p50_ms": 6.0},
        ("complete", "trio", 64): {"p50_ms": 9.0},
        ("search", "asyncio", 8): {"p50_ms": 7.0},
    }
    lines = complete_goals(options, summary)
    assert "| trio | 1.50 | 6.00 | 0.25× |" in lines
    assert not [line for line in lines if line.startswith("| asyncio")]
    assert (
        complete_goals(options.__class__(**{**options.__dict__, "workloads": ("search",)}), summary)
        == []
    )
