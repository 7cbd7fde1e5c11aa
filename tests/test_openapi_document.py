"""The OpenAPI document as client generators read it: shared models, required fields, headers.

Built from the app itself (both builds share it), no server and no Elasticsearch:
the structure a generator depends on, and the parameters' schemas agreeing with
what the service accepts, one parameter at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from quart_trio import QuartTrio

from trio_books.api.guards import unreadable_query
from trio_books.core.cursor import Cursor, CursorError, seal, unseal
from trio_books.core.query import SearchQuery
from trio_books.drills.fuzz_rules import within_cross_rules
from trio_books.settings import Settings
from trio_books.trio.app import create_app

SEARCH = "/api/v1/search/"
ANSWERS = {
    "/": "Ping",
    "/healthz": "Health",
    "/readyz": "Health",
    SEARCH: "SearchResponse",
    "/api/v1/books/{book_id}": "Book",
    "/api/v1/books/{book_id}/similar": "SimilarResponse",
    "/api/v1/complete": "CompleteResponse",
}


async def document() -> dict[str, Any]:
    app: QuartTrio = create_app(Settings())
    answer = await app.test_client().get("/openapi.json")
    assert answer.status_code == 200
    spec: dict[str, Any] = await answer.get_json()
    return spec


def walk(node: object, path: str = "") -> Iterator[tuple[str, object]]:
    """Every (path, value) of a JSON document, depth first."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}/{index}")


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


async def test_each_answer_refers_to_one_named_model() -> None:
    spec = await document()
    schemas = spec["components"]["schemas"]
    for path, model in ANSWERS.items():
        ok = spec["paths"][path]["get"]["responses"]["200"]
        assert ok["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{model}"
        }, path
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            json_body = response.get("content", {}).get("application/json")
            if json_body is not None and status >= "400":
                assert json_body["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, (
                    method,
                    path,
                    status,
                )
    # Nothing inlined and left behind: no $defs anywhere, every $ref resolves.
    for where, value in walk(spec):
        assert not where.endswith("/$defs"), where
        if where.endswith("/$ref"):
            assert isinstance(value, str)
            kind, name = value.removeprefix("#/components/").split("/")
            assert name in spec["components"][kind], where
    # One operation id each: a generator names its functions after them.
    ids = [operation["operationId"] for _path, _method, operation in operations(spec)]
    assert len(ids) == len(set(ids)), ids
    # One model per name: none renamed per operation by a generator's reconciling.
    assert {"Book", "Result", "ErrorResponse", "Problem", "Health", "SearchResponse"} <= set(
        schemas
    )
    assert not [name for name in schemas if name.startswith(("Get", "get_"))]


async def test_every_field_an_answer_always_sends_is_required() -> None:
    schemas = (await document())["components"]["schemas"]
    for name in ("SearchResponse", "Result", "Book", "Facets", "Health", "CompleteResponse"):
        schema = schemas[name]
        assert set(schema["required"]) == set(schema["properties"]), name
    assert set(schemas["SearchResponse"]["required"]) >= {
        "partial",
        "errors",
        "suggestions",
        "trace",
        "facets",
        "next",
        "cursor",
    }
    # Error bodies come from several layers: details (422 only) and request_id may be absent,
    # and are then absent, not null.
    error = schemas["ErrorResponse"]
    assert error["required"] == ["error", "message"]
    assert not [field for field, schema in error["properties"].items() if "default" in schema]


async def test_query_parameters_are_what_a_query_string_can_carry() -> None:
    spec = await document()
    for path, _method, operation in operations(spec):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            assert '"null"' not in repr(schema).replace("'", '"'), (path, parameter["name"])
            assert schema.get("default", "absent") is not None, (path, parameter["name"])
            if schema.get("type") == "string" and "enum" not in schema:
                assert "pattern" in schema, (path, parameter["name"])
    search = {p["name"]: p for p in spec["paths"][SEARCH]["get"]["parameters"]}
    # Required where the service needs it, and only there.
    assert not [p["name"] for p in search.values() if p.get("required")]
    complete = spec["paths"]["/api/v1/complete"]["get"]["parameters"]
    assert [p["name"] for p in complete if p.get("required")] == ["prefix"]
    book_id = spec["paths"]["/api/v1/books/{book_id}"]["get"]["parameters"][0]
    assert (book_id["required"], book_id["schema"]["minimum"]) == (True, 0)
    sort = search["sort"]["schema"]
    names = sort["x-enum-varnames"]
    assert len(names) == len(sort["enum"])
    assert all(name.isidentifier() for name in names)
    assert dict(zip(sort["enum"], names, strict=True))["-year"] == "YEAR_DESC"
    assert (search["tags"]["style"], search["tags"]["explode"]) == ("form", True)


def accepted(**params: object) -> bool:
    """Whether the service takes these parameters: the query string's guard, then the model."""
    if unreadable_query(urlencode(params, doseq=True).encode()) is not None:
        return False
    try:
        SearchQuery.model_validate(params)
    except ValidationError:
        return False
    return True


def schema_accepts(schema: dict[str, Any], value: object) -> bool:
    """JSON Schema validation, with patterns read as Python (and schemathesis) reads them.

    A tag may be a word of any script: ``\\w`` is Unicode in Python's patterns, where
    an ECMA-262 engine (jsonschema-rs follows one) reads it as ASCII.
    """
    plain = {key: rule for key, rule in schema.items() if key != "pattern"}
    checks: list[tuple[str, list[object]]] = []
    if "pattern" in schema:
        checks.append((schema["pattern"], [value]))
    items = schema.get("items")
    if isinstance(items, dict) and "pattern" in items:
        plain["items"] = {key: rule for key, rule in items.items() if key != "pattern"}
        checks.append((items["pattern"], value if isinstance(value, list) else []))
    return jsonschema_rs.validator_for(plain).is_valid(value) and all(
        isinstance(text, str) and re.search(pattern, text) is not None
        for pattern, texts in checks
        for text in texts
    )


# (parameter, value, the others): the schema and the service must agree on each value.
# The others hold what a cross-parameter rule needs: a page at the window's edge needs size 1.
SAMPLES: list[tuple[str, object, dict[str, object]]] = [
    ("q", "hunger games", {}),
    ("q", "x" * 500, {}),
    ("q", "x" * 501, {}),
    ("q", " " + "x" * 500, {}),
    ("q", "tab\tand line\nfeed", {}),
    ("q", "bell\x07", {}),
    ("q", "nul\x00", {}),
    ("tags", ["young-adult"], {}),
    ("tags", [" young-adult "], {}),
    ("tags", ["\u3000young-adult\xa0"], {}),
    ("tags", ["young-adult\x0b"], {}),
    ("tags", [" " + "a" * 64], {}),
    ("tags", ["научная-фантастика"], {}),
    ("tags", ["young_adult"], {}),
    ("tags", ["young--adult"], {}),
    ("tags", [""], {}),
    ("tags", ["a" * 64], {}),
    ("tags", ["a" * 65], {}),
    ("tags", ["war"] * 20, {}),
    ("tags", ["war"] * 21, {}),
    ("page", 10_000, {"size": 1}),
    ("page", 10_001, {"size": 1}),
    ("page", 0, {}),
    ("size", 100, {}),
    ("size", 101, {}),
    ("year", -100_000, {}),
    ("year", 100_001, {}),
    ("sort", "-year", {}),
    ("sort", "newest", {}),
    ("timeout", 99, {}),
    ("timeout", 100, {}),
    ("language", "eng", {}),
    ("language", "x" * 17, {}),
    ("language", " " + "x" * 16, {}),
    ("sort", " year", {}),
]


@pytest.mark.parametrize(("name", "value", "others"), SAMPLES)
async def test_a_search_parameter_schema_accepts_what_the_service_accepts(
    name: str, value: object, others: dict[str, object]
) -> None:
    spec = await document()
    schema = next(p for p in spec["paths"][SEARCH]["get"]["parameters"] if p["name"] == name)
    by_schema = schema_accepts(schema["schema"], value)
    by_service = accepted(**others, **{name: value})
    assert by_schema == by_service, (name, value, by_schema, by_service)


async def test_a_cursor_the_service_did_not_issue_fits_the_schema_only_by_its_shape() -> None:
    spec = await document()
    schema = next(p for p in spec["paths"][SEARCH]["get"]["parameters"] if p["name"] == "cursor")
    key = b"k" * 32
    issued = seal(Cursor(sort="title", after=("war and peace", 7)), key)
    assert schema_accepts(schema["schema"], issued)
    assert unseal(issued, key, sort="title", width=2).after == ("war and peace", 7)
    assert not schema_accepts(schema["schema"], "not a cursor")
    # Shaped right, sealed wrong: the schema cannot know the seal; the service refuses it.
    forged = issued.partition(".")[0] + ".AAAA"
    assert schema_accepts(schema["schema"], forged)
    with pytest.raises(CursorError):
        unseal(forged, key, sort="title", width=2)


async def test_headers_are_documented_where_they_are_sent() -> None:
    spec = await document()
    headers = spec["components"]["headers"]
    assert {"X-Request-Id", "X-Process-Time", "Server-Timing", "Retry-After", "Link"} <= set(
        headers
    )
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            assert "X-Request-Id" in response["headers"], (method, path, status)
            if status == "503":
                assert "Retry-After" in response["headers"], (method, path)
        if method == "options":
            assert "Allow" in operation["responses"]["200"]["headers"], path
    assert "Link" in spec["paths"][SEARCH]["get"]["responses"]["200"]["headers"]
    redirect = spec["paths"][SEARCH.removesuffix("/")]["get"]["responses"]["308"]
    assert set(spec["paths"][SEARCH.removesuffix("/")]["get"]["responses"]) >= {"413", "503"}
    book_options = spec["paths"]["/api/v1/books/{book_id}"]["options"]
    assert {"200", "404", "413", "503"} <= set(book_options["responses"])
    assert [p["name"] for p in book_options["parameters"]] == ["book_id"]
    assert headers["X-Request-Id"]["required"] is True
    assert "Location" in redirect["headers"]
    assert "text/html" in redirect["content"]


def isbn13_valid(isbn: str) -> bool:
    digits = [int(c) for c in isbn]
    return (
        len(digits) == 13 and sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits)) % 10 == 0
    )


def isbn10_valid(isbn: str) -> bool:
    values = [10 if c == "X" else int(c) for c in isbn]
    return len(values) == 10 and sum(v * (10 - i) for i, v in enumerate(values)) % 11 == 0


async def test_isbn_examples_carry_their_check_digits() -> None:
    book = (await document())["components"]["schemas"]["Book"]["properties"]
    assert all(isbn13_valid(example) for example in book["isbn13"]["examples"])
    assert all(isbn10_valid(example) for example in book["isbn"]["examples"])
    assert not isbn13_valid("9780439023483")


@settings(max_examples=300, deadline=None)
@given(
    page=st.integers(1, 10_000),
    size=st.integers(1, 100),
    year_from=st.integers(-100_000, 100_000),
    year_to=st.integers(-100_000, 100_000),
    cursor=st.none() | st.just("eyJzIjpbMV19.AAAA"),
    as_text=st.booleans(),
)
def test_the_fuzzers_valid_requests_keep_the_cross_parameter_rules(
    page: int, size: int, year_from: int, year_to: int, cursor: str | None, as_text: bool
) -> None:
    # What the fuzz drill does to the requests schemathesis generates as valid: after
    # it, every request valid parameter by parameter is a request the service takes.
    # Schemathesis' coverage phase hands the values over as text already.
    numbers = {"page": page, "size": size, "year_from": year_from, "year_to": year_to}
    query: dict[str, object] = {
        name: str(value) if as_text else value for name, value in numbers.items()
    }
    if cursor is not None:
        query["cursor"] = cursor
    kept = within_cross_rules(query)
    assert accepted(**kept)
    assert "cursor" not in kept
    assert kept["size"] == query["size"]
