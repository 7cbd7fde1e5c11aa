"""Property-based tests of the pure core: query building and response parsing.

Any valid parameters give a well-formed Elasticsearch body in which user text
appears only as the text of a ``match``-family query. Answers in Elasticsearch's
real shape parse, every book and count intact; answers broken where the parser
needs them fail with our own error type; and any answer at all parses or fails
with that error, never another exception.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_books.core.books import Book, book_to_document
from trio_books.core.query import (
    FACETS,
    HITS_BRANCH,
    MAX_QUERY_LENGTH,
    MAX_RESULT_WINDOW,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    TAG_SLUG,
    SearchQuery,
    facet_branch,
    search_requests,
)
from trio_books.core.results import SearchResponse, parse_search
from trio_books.errors import ResponseShapeError

TEXT_KEYS = {"query"}
# The only places user text may appear, by the key that holds it.
TEXT_QUERIES = {"multi_match", "match"}
MARKER = "\x00user text\x00"
PARSERS = {"query_string", "simple_query_string", "script", "regexp", "wildcard", "prefix"}

texts = st.text(max_size=MAX_QUERY_LENGTH).filter(lambda t: t.strip())
slugs = st.from_regex(TAG_SLUG, fullmatch=True).filter(lambda t: len(t) <= MAX_TAG_LENGTH)


@st.composite
def search_queries(draw: st.DrawFn) -> SearchQuery:
    size = draw(st.integers(1, 100))
    year_from = draw(st.none() | st.integers(-3000, 3000))
    year_to = draw(st.none() | st.integers(year_from if year_from is not None else -3000, 3000))
    return SearchQuery(
        q=draw(st.none() | texts),
        tags=draw(st.lists(slugs, max_size=MAX_TAGS)),
        tags_mode=draw(st.sampled_from(["any", "all"])),
        year=draw(st.none() | st.integers(-3000, 3000)),
        year_from=year_from,
        year_to=year_to,
        language=draw(st.none() | st.text(min_size=1, max_size=16).filter(lambda t: t.strip())),
        size=size,
        page=draw(st.integers(1, MAX_RESULT_WINDOW // size)),
        sort=draw(st.sampled_from(["relevance", "year", "-year", "title", "rating"])),
    )


def walk(node: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every (path of keys, leaf value) in a JSON-like tree."""
    if isinstance(node, dict):
        return [leaf for key, value in node.items() for leaf in walk(value, (*path, key))]
    if isinstance(node, list):
        return [leaf for value in node for leaf in walk(value, path)]
    return [(path, node)]


@given(search_queries())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_any_valid_query_gives_well_formed_bodies(query: SearchQuery) -> None:
    requests = search_requests(query, facet_size=20)
    assert set(requests) == {HITS_BRANCH, *(facet_branch(facet) for facet in FACETS)}
    hits = requests[HITS_BRANCH]
    assert hits["from"] + hits["size"] <= MAX_RESULT_WINDOW
    for body in requests.values():
        # Serialisable as it is, and the same after a JSON round trip.
        assert orjson.loads(orjson.dumps(body)) == body
        leaves = walk(body)
        assert not PARSERS & {key for path, _ in leaves for key in path}
    if query.q is not None:
        # The body's shape does not depend on the text, so put a marker in its
        # place: wherever the marker lands is where user text goes.
        marked = search_requests(query.model_copy(update={"q": MARKER}), facet_size=20)
        places = {path for body in marked.values() for path, value in walk(body) if value == MARKER}
        assert places
        for path in places:
            assert path[-1] in TEXT_KEYS
            assert path[-2] in TEXT_QUERIES or path[-3] in TEXT_QUERIES


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def hits_answers(draw: st.DrawFn) -> dict[str, Any]:
    """Hits answers near the real shape, with any part possibly broken."""

    def maybe(value: Any) -> Any:
        return draw(st.just(value) | json_values) if draw(st.booleans()) else value

    source = {
        "book_id": maybe(draw(st.integers(0, 10**6))),
        "title": maybe(draw(st.text(min_size=1, max_size=20))),
        "authors": maybe([{"name": maybe("A. Writer")}]),
        "tags": maybe([{"slug": maybe("x"), "title": "X"}]),
        "average_rating": maybe(draw(st.none() | st.floats(0, 5))),
    }
    hit = maybe({"_source": maybe(source)})
    return {"hits": maybe({"total": maybe({"value": maybe(1)}), "hits": maybe([hit])})}


@st.composite
def facet_answers(draw: st.DrawFn, facet: str) -> dict[str, Any]:
    def maybe(value: Any) -> Any:
        return draw(st.just(value) | json_values) if draw(st.booleans()) else value

    if facet == "tags":
        bucket = {
            "key": maybe("fantasy"),
            "title": maybe({"buckets": maybe([{"key": "Fantasy"}])}),
            "books": maybe({"doc_count": maybe(3)}),
        }
        aggregation = {"slugs": maybe({"buckets": maybe([bucket])})}
    else:
        aggregation = {"buckets": maybe([{"key": maybe(1990), "doc_count": maybe(2)}])}
    return {"aggregations": maybe({facet: maybe(aggregation)})}


@given(hits_answers(), facet_answers("tags"), facet_answers("years"), facet_answers("languages"))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_any_elasticsearch_shaped_answer_parses_or_fails_with_our_error(
    hits: dict[str, Any], tags: Any, years: Any, languages: Any
) -> None:
    answers = {
        HITS_BRANCH: hits,
        facet_branch("tags"): tags,
        facet_branch("years"): years,
        facet_branch("languages"): languages,
    }
    try:
        response = parse_search(answers)
    except ResponseShapeError:
        return
    # What parsed validates again as the documented response.
    assert SearchResponse.model_validate_json(response.model_dump_json()) == response


@given(json_values)
@settings(max_examples=300)
def test_any_json_as_a_hits_answer_parses_or_fails_with_our_error(answer: Any) -> None:
    with contextlib.suppress(ResponseShapeError):
        parse_search({HITS_BRANCH: answer if isinstance(answer, dict) else {"hits": answer}})


# Answers exactly as Elasticsearch writes them: these must parse, every value intact.
names = st.text(min_size=1, max_size=30).filter(lambda t: t.strip())
books = st.builds(
    Book,
    book_id=st.integers(0, 2**63 - 1),
    title=names,
    original_title=st.none() | names,
    isbn=st.none() | st.from_regex(r"\d{9}[\dX]", fullmatch=True),
    isbn13=st.none() | st.from_regex(r"97[89]\d{10}", fullmatch=True),
    authors=st.lists(st.builds(dict, name=names), max_size=4),
    tags=st.lists(st.builds(dict, title=names, slug=slugs), max_size=4),
    original_publication_year=st.none() | st.integers(-9999, 9999),
    language_code=st.none() | st.text(min_size=1, max_size=8),
    average_rating=st.none() | st.floats(0, 5),
    ratings_count=st.none() | st.integers(0, 2**63 - 1),
    small_image_url=st.none() | st.text(max_size=40),
)


@st.composite
def real_answers(draw: st.DrawFn) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Answers of the four branches in Elasticsearch's shape, and what they hold."""
    page = draw(st.lists(books, max_size=5, unique_by=lambda book: book.book_id))
    total = draw(st.integers(len(page), 10**9))
    counts = st.integers(0, 10**9)
    tag_buckets = draw(st.lists(st.tuples(slugs, st.none() | names, counts), max_size=5))
    years = draw(st.lists(st.tuples(st.integers(-9999, 9999), counts), max_size=5))
    languages = draw(st.lists(st.tuples(names, counts), max_size=5))
    shards = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}

    def envelope(body: dict[str, Any]) -> dict[str, Any]:
        return {"took": draw(st.integers(0, 10**4)), "timed_out": False, "_shards": shards, **body}

    hits = envelope(
        {
            "hits": {
                "total": {"value": total, "relation": "eq"},
                "max_score": draw(st.none() | st.floats(0, 100)),
                "hits": [
                    {
                        "_index": "books-20261204",
                        "_id": str(book.book_id),
                        "_score": 1.0,
                        # Round-tripped through JSON, as it comes off the wire.
                        "_source": orjson.loads(orjson.dumps(book_to_document(book))),
                    }
                    for book in page
                ],
            }
        }
    )
    empty_hits = {"total": {"value": total, "relation": "eq"}, "max_score": None, "hits": []}
    tags = {
        "doc_count": 0,
        "slugs": {
            "doc_count_error_upper_bound": 0,
            "sum_other_doc_count": 0,
            "buckets": [
                {
                    "key": slug,
                    "doc_count": count + 1,
                    "title": {
                        "doc_count_error_upper_bound": 0,
                        "sum_other_doc_count": 0,
                        "buckets": [] if title is None else [{"key": title, "doc_count": 1}],
                    },
                    "books": {"doc_count": count},
                }
                for slug, title, count in tag_buckets
            ],
        },
    }

    def terms(buckets: list[tuple[Any, int]]) -> dict[str, Any]:
        return {
            "doc_count_error_upper_bound": 0,
            "sum_other_doc_count": 0,
            "buckets": [{"key": key, "doc_count": count} for key, count in buckets],
        }

    answers = {
        HITS_BRANCH: hits,
        facet_branch("tags"): envelope({"hits": empty_hits, "aggregations": {"tags": tags}}),
        facet_branch("years"): envelope(
            {"hits": empty_hits, "aggregations": {"years": terms(years)}}
        ),
        facet_branch("languages"): envelope(
            {"hits": empty_hits, "aggregations": {"languages": terms(languages)}}
        ),
    }
    expected = {
        "results": page,
        "count": total,
        "tags": [
            (slug, slug if title is None else title, count) for slug, title, count in tag_buckets
        ],
        "years": years,
        "languages": languages,
    }
    return answers, expected


@given(real_answers())
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_every_answer_in_elasticsearchs_shape_parses_with_every_value_intact(
    drawn: tuple[dict[str, dict[str, Any]], dict[str, Any]],
) -> None:
    answers, expected = drawn
    response = parse_search(answers)
    assert [result.model_dump(exclude={"highlight"}) for result in response.results] == [
        book.model_dump() for book in expected["results"]
    ]
    assert {result.highlight for result in response.results} <= {None}
    assert response.count == expected["count"]
    assert [(t.slug, t.title, t.count) for t in response.facets.tags] == expected["tags"]
    assert [(y.year, y.count) for y in response.facets.years] == expected["years"]
    assert [(lang.code, lang.count) for lang in response.facets.languages] == expected["languages"]
    assert (response.partial, response.errors) == (False, [])


# Places the parser needs, each broken in a way no reading of the answer can mend.
BREAKS: dict[str, Any] = {
    "no hits object": lambda answers: answers[HITS_BRANCH].pop("hits"),
    "hits not a list": lambda answers: answers[HITS_BRANCH]["hits"].update(hits={"0": {}}),
    "no total": lambda answers: answers[HITS_BRANCH]["hits"].pop("total"),
    "total not a number": lambda answers: answers[HITS_BRANCH]["hits"]["total"].update(
        value="many"
    ),
    "a hit without its source": lambda answers: answers[HITS_BRANCH]["hits"]["hits"].append(
        {"_id": "1"}
    ),
    "a book without a title": lambda answers: answers[HITS_BRANCH]["hits"]["hits"].append(
        {"_source": {"book_id": 1}}
    ),
    "a negative book id": lambda answers: answers[HITS_BRANCH]["hits"]["hits"].append(
        {"_source": {"book_id": -1, "title": "T"}}
    ),
    "no aggregations": lambda answers: answers[facet_branch("years")].pop("aggregations"),
    "a facet's buckets not a list": lambda answers: answers[facet_branch("languages")][
        "aggregations"
    ]["languages"].update(buckets=None),
    "a negative count": lambda answers: answers[facet_branch("years")]["aggregations"]["years"][
        "buckets"
    ].append({"key": 2000, "doc_count": -1}),
    "a tag bucket without books": lambda answers: answers[facet_branch("tags")]["aggregations"][
        "tags"
    ]["slugs"]["buckets"].append({"key": "x", "title": {"buckets": []}}),
}


@given(real_answers(), st.sampled_from(sorted(BREAKS)))
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_an_answer_broken_where_the_parser_needs_it_fails_with_our_error(
    drawn: tuple[dict[str, dict[str, Any]], dict[str, Any]], broken: str
) -> None:
    answers, _expected = drawn
    BREAKS[broken](answers)
    with pytest.raises(ResponseShapeError):
        parse_search(answers)
