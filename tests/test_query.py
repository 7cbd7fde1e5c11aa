"""The pure query builder: no server, plain data in and out."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from trio_books.core.cursor import MAX_CURSOR_LENGTH
from trio_books.core.query import (
    SearchQuery,
    facet_body,
    filters,
    hits_body,
    search_requests,
)


def keys_anywhere(body: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(body, dict):
        for key, value in body.items():
            found.add(key)
            found |= keys_anywhere(value)
    elif isinstance(body, list):
        for item in body:
            found |= keys_anywhere(item)
    return found


def test_empty_query_matches_everything_first_page() -> None:
    body = hits_body(SearchQuery())
    assert body["query"]["bool"]["must"] == [{"match_all": {}}]
    assert body["query"]["bool"]["filter"] == []
    assert (body["from"], body["size"], body["track_total_hits"]) == (0, 20, True)


def test_paging_offsets() -> None:
    assert hits_body(SearchQuery(page=3, size=25))["from"] == 50


@pytest.mark.parametrize(
    "text", ["title:x AND y", "*", '{"script": {"source": "1"}}', "a OR (b", "\\/"]
)
def test_user_text_only_reaches_match_queries(text: str) -> None:
    body = hits_body(SearchQuery(q=text))
    keys = keys_anywhere(body)
    assert not keys & {"query_string", "simple_query_string", "script", "regexp", "wildcard"}
    # The text arrives untouched, as the query of match clauses only.
    assert json.dumps(text) in json.dumps(body)


def test_tags_any_is_one_terms_clause_all_is_one_per_tag() -> None:
    any_of = filters(SearchQuery(tags=["a", "b"]))
    assert any_of == [{"nested": {"path": "tags", "query": {"terms": {"tags.slug": ["a", "b"]}}}}]
    all_of = filters(SearchQuery(tags=["a", "b"], tags_mode="all"))
    assert [f["nested"]["query"] for f in all_of] == [
        {"term": {"tags.slug": "a"}},
        {"term": {"tags.slug": "b"}},
    ]


def test_year_filters() -> None:
    assert filters(SearchQuery(year=-720)) == [{"term": {"original_publication_year": -720}}]
    assert filters(SearchQuery(year_from=1900)) == [
        {"range": {"original_publication_year": {"gte": 1900}}}
    ]


def test_each_facet_leaves_out_only_its_own_filter() -> None:
    query = SearchQuery(tags=["fantasy"], year=1990, language="eng")
    full = filters(query)
    assert len(full) == 3
    for facet, dropped in (("tags", "nested"), ("years", "term"), ("languages", "term")):
        body = facet_body(query, facet, 10)  # type: ignore[arg-type]
        kept = body["query"]["bool"]["filter"]
        assert len(kept) == 2
        assert body["size"] == 0
        assert facet in body["aggs"]
        missing = [clause for clause in full if clause not in kept]
        assert len(missing) == 1
        assert dropped in missing[0]


def test_one_search_is_four_independent_requests() -> None:
    requests = search_requests(SearchQuery(q="dune"), facet_size=7)
    assert list(requests) == ["hits", "facet-tags", "facet-years", "facet-languages"]
    assert requests["facet-years"]["aggs"]["years"]["terms"]["size"] == 7


def test_tags_accept_one_or_many_and_drop_duplicates() -> None:
    assert SearchQuery.model_validate({"tags": "a"}).tags == ["a"]
    assert SearchQuery.model_validate({"tags": ["a", "b", "a"]}).tags == ["a", "b"]


def test_blank_text_means_no_text() -> None:
    assert SearchQuery(q="   ").q is None


@pytest.mark.parametrize(
    ("params", "rule"),
    [
        ({"size": 0}, "greater_than_equal"),
        ({"size": 101}, "less_than_equal"),
        ({"page": 201, "size": 50}, "result_window"),
        ({"year_from": 5, "year_to": 4}, "year_range"),
        ({"sort": "newest"}, "literal_error"),
        ({"tags": ["ok", " "]}, "empty_tag"),
        ({"unknown": 1}, "extra_forbidden"),
    ],
)
def test_rules(params: dict[str, Any], rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SearchQuery.model_validate(params)
    assert rule in {error["type"] for error in caught.value.errors()}


def test_the_deepest_page_allowed() -> None:
    assert SearchQuery(page=100, size=100).page == 100


def test_index_body_is_a_fresh_copy_each_time() -> None:
    from trio_books.core.mapping import index_body

    changed = index_body()
    changed["mappings"]["properties"]["title_sort"] = {"type": "text"}
    assert index_body()["mappings"]["properties"]["title_sort"] == {"type": "keyword"}


def test_time_limit_rounds_down_to_a_cacheable_step() -> None:
    from trio_books.core.query import with_time_limit

    # Most of a 2 s budget left: one key for every call that started in its first 500 ms.
    assert with_time_limit({}, 1.9987)["timeout"] == "1500ms"
    assert with_time_limit({}, 1.6012)["timeout"] == "1500ms"
    assert with_time_limit({}, 1.0)["timeout"] == "1000ms"
    # Near the end, finer steps waste less of what is left.
    assert with_time_limit({}, 0.9987)["timeout"] == "900ms"
    assert with_time_limit({}, 0.0734)["timeout"] == "73ms"
    assert with_time_limit({}, 0.0)["timeout"] == "1ms"


# ---------------------------------------------------------------- highlights and cursors


def test_a_text_search_asks_for_marks_on_titles_and_authors() -> None:
    body = hits_body(SearchQuery(q="collins"))
    assert body["highlight"]["fields"] == {"title": {}}
    nested = body["query"]["bool"]["must"][0]["bool"]["should"][1]["nested"]
    assert nested["inner_hits"]["highlight"]["fields"] == {"authors.name": {}}
    # The completion inputs are indexed, never sent back.
    assert body["_source"] == {"excludes": ["title_complete", "author_complete", "title_sort"]}


@pytest.mark.parametrize("query", [SearchQuery(q="collins", highlight=False), SearchQuery()])
def test_no_marks_asked_for_without_text_or_when_off(query: SearchQuery) -> None:
    body = hits_body(query)
    assert "highlight" not in body
    assert "inner_hits" not in keys_anywhere(body)


def test_facets_never_ask_for_marks() -> None:
    for name, body in search_requests(SearchQuery(q="collins"), facet_size=5).items():
        if name != "hits":
            assert not keys_anywhere(body) & {"highlight", "inner_hits"}, name


def test_a_cursor_continues_after_its_values_and_asks_for_one_more() -> None:
    body = hits_body(SearchQuery(sort="rating", size=10), after=("-Infinity", 0, 42))
    assert (body["from"], body["size"], body["search_after"]) == (0, 11, ["-Infinity", 0, 42])
    assert "search_after" not in hits_body(SearchQuery(sort="rating", size=10))


def test_a_cursor_and_a_page_exclude_each_other() -> None:
    with pytest.raises(ValidationError, match="page or cursor, not both"):
        SearchQuery(page=2, cursor="a.b")
    assert SearchQuery(page=1, cursor="a.b").cursor == "a.b"
    with pytest.raises(ValidationError):
        SearchQuery(cursor="x" * (MAX_CURSOR_LENGTH + 1))
