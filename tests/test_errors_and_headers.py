"""Pure pieces around errors and headers: choosing one error, Server-Timing, CORS rules."""

from __future__ import annotations

from trio_books.api.cors import allowed_origin, cors_headers, preflight_headers
from trio_books.core.timing import (
    Span,
    TimingEntry,
    parse_server_timing,
    parse_server_timing_entries,
    server_timing,
)
from trio_books.errors import (
    ElasticsearchError,
    ElasticsearchUnavailable,
    FieldProblem,
    InvalidParameter,
    error_body,
    most_severe,
)


def test_most_severe_prefers_unavailable_over_bad_answer() -> None:
    group = ExceptionGroup(
        "branches",
        [ElasticsearchError("bad"), ExceptionGroup("inner", [ElasticsearchUnavailable("down")])],
    )
    chosen = most_severe(group)
    assert isinstance(chosen, ElasticsearchUnavailable)


def test_most_severe_refuses_groups_with_foreign_exceptions() -> None:
    assert (
        most_severe(ExceptionGroup("branches", [ElasticsearchError("bad"), KeyError("bug")]))
        is None
    )


def test_error_body_names_field_and_rule() -> None:
    body = error_body(InvalidParameter([FieldProblem("size", "less_than_equal", "too big")]))
    assert body == {
        "error": "invalid_parameter",
        "message": "size: too big",
        "details": [{"field": "size", "rule": "less_than_equal", "message": "too big"}],
    }


def test_server_timing_round_trip() -> None:
    header = server_timing({"hits": 0.0123, "facet-tags": 0.004}, 0.02)
    assert header == "es-hits;dur=12.3, es-facet-tags;dur=4.0, total;dur=20.0"
    assert parse_server_timing(header) == {"es-hits": 12.3, "es-facet-tags": 4.0, "total": 20.0}


def test_server_timing_carries_start_offsets_in_desc() -> None:
    spans = {"hits": Span(100.0004, 0.0123), "facet-tags": Span(100.0010, 0.004)}
    header = server_timing(spans, 0.02, origin=100.0)
    assert header == (
        'es-hits;dur=12.3;desc="start=0.4", es-facet-tags;dur=4.0;desc="start=1.0", total;dur=20.0'
    )
    assert parse_server_timing(header) == {"es-hits": 12.3, "es-facet-tags": 4.0, "total": 20.0}
    assert parse_server_timing_entries(header) == {
        "es-hits": TimingEntry(12.3, 0.4),
        "es-facet-tags": TimingEntry(4.0, 1.0),
        "total": TimingEntry(20.0, None),
    }


def test_cors_rules() -> None:
    assert allowed_origin("https://a.example", []) is None
    assert allowed_origin("https://a.example", ["https://a.example"]) == "https://a.example"
    assert allowed_origin("https://b.example", ["*"]) == "*"
    assert cors_headers("https://b.example", ["https://a.example"]) == {}
    assert cors_headers("https://a.example", ["https://a.example"])["Vary"] == "Origin"
    assert preflight_headers("https://b.example", ["https://a.example"], "") is None
    wildcard = preflight_headers("https://b.example", ["*"], "X-Request-Id")
    assert wildcard is not None
    assert wildcard["Access-Control-Allow-Headers"] == "X-Request-Id"
    assert "Vary" not in wildcard
