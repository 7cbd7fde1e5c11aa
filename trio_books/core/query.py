"""What a search asks for, and the Elasticsearch request bodies that answer it.

One search is several independent requests: the hits, and one request per
facet. Facets are disjunctive: each facet's counts apply every filter except its
own, so choosing one tag still shows how many books each other tag would give.
Those requests share nothing, which is why the service runs them concurrently.

User text only ever reaches ``match`` queries (analysed as plain words), never
a Lucene query-syntax parser such as ``query_string``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from trio_books.core.cursor import CURSOR_PATTERN, MAX_CURSOR_LENGTH, SortValue
from trio_books.core.highlight import author_inner_hits, title_highlight
from trio_books.core.mapping import COMPLETION_FIELDS
from trio_books.errors import FieldProblem, InvalidParameter

MAX_RESULT_WINDOW = 10_000
"""Elasticsearch's default ``index.max_result_window``: page × size may not pass it."""

MAX_QUERY_LENGTH = 500
MAX_TAGS = 20
# What the loader makes of a tag's name (core.records.slugify): words of letters
# and digits of any script, joined by single hyphens.
MAX_TAG_LENGTH = 64
TAG_SLUG = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
# The blanks str.strip() removes that a query string may carry (api.guards refuses
# the other C0 controls): around a tag or the text they are dropped.
BLANK = r"[\t\n\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
# A tag parameter as the schema states it: a slug, blanks around it allowed. Its length
# counts them, as the check below does, so that the schema and the service agree.
TAG_ITEM_SCHEMA: dict[str, JsonValue] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_TAG_LENGTH,
    "pattern": rf"^{BLANK}*{TAG_SLUG.pattern}{BLANK}*$",
}
MAX_SIZE = 100
# Years are stored as Elasticsearch integers; past this they are no year of a book.
MAX_YEAR = 100_000
# The shortest deadline a client may ask for: less cannot cover even one round trip
# to Elasticsearch, and would only turn searches into 504s.
MIN_TIMEOUT_MS = 100

SortOrder = Literal["relevance", "year", "-year", "title", "rating"]
TagsMode = Literal["any", "all"]
Facet = Literal["tags", "years", "languages"]

FACETS: tuple[Facet, ...] = ("tags", "years", "languages")
HITS_BRANCH = "hits"


def facet_branch(facet: Facet) -> str:
    """The branch name of a facet's request, as in ``Server-Timing``: ``facet-tags``."""
    return f"facet-{facet}"


class SearchQuery(BaseModel):
    """The query string of ``GET /search/``."""

    # Text is stripped by the validators below, after the length caps: a cap counts
    # what was sent, as the OpenAPI document's maxLength does.
    model_config = ConfigDict(frozen=True, extra="forbid")

    q: str | None = Field(
        default=None,
        max_length=MAX_QUERY_LENGTH,
        description="Free text over titles, original titles and author names.",
        examples=["hunger games"],
    )
    tags: list[str] = Field(
        default_factory=list,
        max_length=MAX_TAGS,
        description="Tag slugs (repeat the parameter for several); exact match.",
        examples=[["young-adult"]],
        json_schema_extra={"items": TAG_ITEM_SCHEMA},
    )
    tags_mode: TagsMode = Field(
        default="any", description="`any`: a book has any of the tags; `all`: it has all of them."
    )
    year: int | None = Field(
        default=None,
        ge=-MAX_YEAR,
        le=MAX_YEAR,
        description="Exact original publication year (negative: BCE).",
    )
    year_from: int | None = Field(
        default=None, ge=-MAX_YEAR, le=MAX_YEAR, description="Earliest publication year, inclusive."
    )
    year_to: int | None = Field(
        default=None,
        ge=-MAX_YEAR,
        le=MAX_YEAR,
        description="Latest publication year, inclusive; not before `year_from`.",
    )
    language: str | None = Field(
        default=None, max_length=16, description="Language code, e.g. `eng`.", examples=["eng"]
    )
    size: int = Field(default=20, ge=1, le=MAX_SIZE, description="Results per page, 1-100.")
    page: int = Field(
        default=1,
        ge=1,
        description="Page number from 1; page × size ≤ 10,000 (past that, page with `cursor`).",
        # The cross-parameter rule is the validator's; the schema states what it can.
        json_schema_extra={"maximum": MAX_RESULT_WINDOW},
    )
    sort: SortOrder = Field(
        default="relevance",
        description="Result order: `-year` is newest first.",
        # Names for generated clients' enums (`-year` is no identifier).
        json_schema_extra={
            "x-enum-varnames": ["RELEVANCE", "YEAR", "YEAR_DESC", "TITLE", "RATING"]
        },
    )
    timeout: int | None = Field(
        default=None,
        ge=MIN_TIMEOUT_MS,
        le=60_000,
        description="Milliseconds the search may take; shortens the service's deadline, never lengthens it.",
    )
    trace: bool = Field(
        default=False, description="Add the request's task timeline (`trace`) to the answer."
    )
    highlight: bool = Field(
        default=True,
        description="With `q`: mark the matched words of each result's title and authors.",
    )
    cursor: str | None = Field(
        default=None,
        max_length=MAX_CURSOR_LENGTH,
        json_schema_extra={"pattern": CURSOR_PATTERN},
        description="Continue after the page that gave this cursor (same sort); no depth "
        "limit. Only a cursor the service issued, and only with page 1.",
    )

    @field_validator("tags", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        # A single ?tags=x arrives as a string, several as a list.
        return [value] if isinstance(value, str) else value

    @field_validator("tags")
    @classmethod
    def _tags_are_slugs(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if len(tag) > MAX_TAG_LENGTH:
                raise PydanticCustomError(
                    "tag_too_long",
                    "a tag is at most {limit} characters (one has {length})",
                    {"limit": MAX_TAG_LENGTH, "length": len(tag)},
                )
        cleaned = [tag.strip() for tag in tags]
        if any(not tag for tag in cleaned):
            raise PydanticCustomError("empty_tag", "tags may not be empty")
        for tag in cleaned:
            if not TAG_SLUG.fullmatch(tag):
                raise PydanticCustomError(
                    "tag_slug",
                    "a tag is a slug: letters and digits in words joined by single hyphens, "
                    "like young-adult",
                )
        return list(dict.fromkeys(cleaned))

    @field_validator("q", "language")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @field_validator("page")
    @classmethod
    def _within_result_window(cls, page: int, info: ValidationInfo) -> int:
        size = info.data.get("size")
        if isinstance(size, int) and page * size > MAX_RESULT_WINDOW:
            raise PydanticCustomError(
                "result_window",
                "page × size must be at most {limit} (here {page} × {size})",
                {"limit": MAX_RESULT_WINDOW, "page": page, "size": size},
            )
        return page

    @field_validator("cursor")
    @classmethod
    def _cursor_or_page(cls, cursor: str | None, info: ValidationInfo) -> str | None:
        if cursor is not None and info.data.get("page", 1) != 1:
            raise PydanticCustomError(
                "cursor_page",
                "a cursor continues where its page ended: give page or cursor, not both",
            )
        return cursor

    @field_validator("year_to")
    @classmethod
    def _range_in_order(cls, year_to: int | None, info: ValidationInfo) -> int | None:
        year_from = info.data.get("year_from")
        if year_to is not None and isinstance(year_from, int) and year_to < year_from:
            raise PydanticCustomError(
                "year_range",
                "year_to ({year_to}) is before year_from ({year_from})",
                {"year_to": year_to, "year_from": year_from},
            )
        return year_to


@dataclass(frozen=True)
class QueryCaps:
    """A service's own caps, at or below the ceilings :class:`SearchQuery` documents."""

    max_query_length: int = MAX_QUERY_LENGTH
    max_tags: int = MAX_TAGS
    max_size: int = MAX_SIZE
    max_result_window: int = MAX_RESULT_WINDOW


def check_caps(query: SearchQuery, caps: QueryCaps) -> None:
    """Raise a 422 naming every parameter past the service's caps.

    Raises:
        InvalidParameter: one problem per broken cap.
    """
    problems: list[FieldProblem] = []
    if query.q is not None and len(query.q) > caps.max_query_length:
        problems.append(
            FieldProblem("q", "string_too_long", f"at most {caps.max_query_length} characters")
        )
    if len(query.tags) > caps.max_tags:
        problems.append(FieldProblem("tags", "too_long", f"at most {caps.max_tags} tags"))
    if query.size > caps.max_size:
        problems.append(FieldProblem("size", "less_than_equal", f"at most {caps.max_size}"))
    if query.page * query.size > caps.max_result_window:
        problems.append(
            FieldProblem(
                "page",
                "result_window",
                f"page × size must be at most {caps.max_result_window}"
                f" (here {query.page} × {query.size})",
            )
        )
    if problems:
        raise InvalidParameter(problems)


def effective_deadline(service_deadline: float, timeout_ms: int | None) -> float:
    """Seconds a search may take: the service's deadline, or less if the client asks."""
    if timeout_ms is None:
        return service_deadline
    return min(service_deadline, timeout_ms / 1000)


# Steps the time left is rounded down to: coarse while most of a search's budget
# is left, fine near its end.
COARSE_STEP_MS = 500
FINE_STEP_MS = 100


def with_time_limit(body: dict[str, Any], seconds: float) -> dict[str, Any]:
    """*body* with Elasticsearch's own ``timeout``, so the server stops when we stop waiting.

    The timeout is part of the body, and Elasticsearch's shard request cache keys
    on the whole body: a value that changed with every call would keep every facet
    request (``size: 0``) out of that cache, and a facet request missing it costs
    Elasticsearch many times one that hits. So the time left is rounded down
    (never up: the deadline is never lengthened) to a step of 500 ms while a
    second or more is left, and of 100 ms below that. Under load, searches that
    waited different times before their calls then still share one key; in
    100 ms steps, a build whose calls start a little later under load gave
    Elasticsearch several keys per query and half again as much CPU per search.
    Elasticsearch's timeout is a soft one (it answers with what it has, marked
    ``timed_out``), and only a call slower than that second and a half notices.
    """
    ms = int(seconds * 1000)
    step = COARSE_STEP_MS if ms >= 1000 else FINE_STEP_MS
    if ms >= step:
        ms -= ms % step
    return {**body, "timeout": f"{max(1, ms)}ms"}


# ---------------------------------------------------------------- query parts


def text_query(text: str, *, marked_authors: bool = False) -> dict[str, Any]:
    """Free text over titles and author names; any word may match.

    With *marked_authors* the matching authors come back as highlighted inner hits.
    """
    authors: dict[str, Any] = {
        "path": "authors",
        "score_mode": "max",
        "query": {"match": {"authors.name": {"query": text}}},
    }
    if marked_authors:
        authors["inner_hits"] = author_inner_hits()
    return {
        "bool": {
            "should": [
                {
                    "multi_match": {
                        "query": text,
                        "fields": ["title^2", "original_title"],
                        "type": "best_fields",
                    }
                },
                {"nested": authors},
            ],
            "minimum_should_match": 1,
        }
    }


def _tags_filter(tags: list[str], mode: TagsMode) -> list[dict[str, Any]]:
    if not tags:
        return []
    if mode == "any":
        return [{"nested": {"path": "tags", "query": {"terms": {"tags.slug": tags}}}}]
    return [{"nested": {"path": "tags", "query": {"term": {"tags.slug": tag}}}} for tag in tags]


def _years_filter(query: SearchQuery) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if query.year is not None:
        found.append({"term": {"original_publication_year": query.year}})
    bounds = {}
    if query.year_from is not None:
        bounds["gte"] = query.year_from
    if query.year_to is not None:
        bounds["lte"] = query.year_to
    if bounds:
        found.append({"range": {"original_publication_year": bounds}})
    return found


def filters(query: SearchQuery, *, except_facet: Facet | None = None) -> list[dict[str, Any]]:
    """The filter clauses of *query*, leaving out one facet's own filter if asked."""
    found: list[dict[str, Any]] = []
    if except_facet != "tags":
        found += _tags_filter(query.tags, query.tags_mode)
    if except_facet != "years":
        found += _years_filter(query)
    if except_facet != "languages" and query.language is not None:
        found.append({"term": {"language_code": query.language}})
    return found


def bool_query(
    query: SearchQuery, *, except_facet: Facet | None = None, marked: bool = False
) -> dict[str, Any]:
    must = [text_query(query.q, marked_authors=marked)] if query.q else [{"match_all": {}}]
    return {"bool": {"must": must, "filter": filters(query, except_facet=except_facet)}}


SORTS: dict[SortOrder, list[Any]] = {
    "relevance": ["_score", {"book_id": "asc"}],
    "year": [
        {"original_publication_year": {"order": "asc", "missing": "_last"}},
        {"book_id": "asc"},
    ],
    "-year": [
        {"original_publication_year": {"order": "desc", "missing": "_last"}},
        {"book_id": "asc"},
    ],
    "title": [{"title_sort": "asc"}, {"book_id": "asc"}],
    "rating": [
        {"average_rating": {"order": "desc", "missing": "_last"}},
        {"ratings_count": {"order": "desc", "missing": "_last"}},
        {"book_id": "asc"},
    ],
}


# ---------------------------------------------------------------- request bodies


def marks(query: SearchQuery) -> bool:
    """Whether *query*'s results carry highlights: asked for, and there is text to mark."""
    return query.highlight and bool(query.q)


def hits_body(query: SearchQuery, after: tuple[SortValue, ...] | None = None) -> dict[str, Any]:
    """The request for one page of matching books and their total count.

    *after*: a cursor's sort values, to continue after them (``search_after``)
    rather than from the page number; one book more is asked for, which tells
    whether another page follows.
    """
    marked = marks(query)
    body: dict[str, Any] = {
        "query": bool_query(query, marked=marked),
        "from": (query.page - 1) * query.size,
        "size": query.size,
        "sort": SORTS[query.sort],
        "track_total_hits": True,
        "_source": {"excludes": [*COMPLETION_FIELDS, "title_sort"]},
    }
    if after is not None:
        body.update({"from": 0, "size": query.size + 1, "search_after": list(after)})
    if marked:
        body["highlight"] = title_highlight()
    return body


def facet_aggregation(facet: Facet, size: int) -> dict[str, Any]:
    if facet == "tags":
        return {
            "nested": {"path": "tags"},
            "aggs": {
                "slugs": {
                    "terms": {"field": "tags.slug", "size": size},
                    "aggs": {
                        "title": {"terms": {"field": "tags.title.raw", "size": 1}},
                        # Count books, not tag entries.
                        "books": {"reverse_nested": {}},
                    },
                }
            },
        }
    field = "original_publication_year" if facet == "years" else "language_code"
    return {"terms": {"field": field, "size": size, "order": [{"_count": "desc"}, {"_key": "asc"}]}}


def facet_body(query: SearchQuery, facet: Facet, size: int) -> dict[str, Any]:
    """The request for one facet's counts, with every filter but the facet's own."""
    return {
        "query": bool_query(query, except_facet=facet),
        "size": 0,
        "track_total_hits": False,
        "aggs": {facet: facet_aggregation(facet, size)},
    }


def search_requests(
    query: SearchQuery, facet_size: int, after: tuple[SortValue, ...] | None = None
) -> dict[str, dict[str, Any]]:
    """Every request one search makes, by branch name: ``hits`` and ``facet-*``."""
    requests = {HITS_BRANCH: hits_body(query, after)}
    for facet in FACETS:
        requests[facet_branch(facet)] = facet_body(query, facet, facet_size)
    return requests
