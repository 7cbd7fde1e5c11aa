"""Property-based tests of the pure core: query building and response parsing.

Any valid parameters give a well-formed Elasticsearch body in which user text
appears only as the text of a ``match``-family query; any Elasticsearch-shaped
answer parses or fails with our own error type.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
