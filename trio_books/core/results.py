"""Elasticsearch answers turned into the API's response models.

Anything that does not have the expected shape raises
:class:`~trio_books.errors.ResponseShapeError`, never a ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from trio_books.core.books import Book
from trio_books.core.highlight import Highlight, book_highlight
from trio_books.core.query import FACETS, HITS_BRANCH, Facet, facet_branch
from trio_books.core.timeline import Trace
from trio_books.errors import ResponseShapeError


class TagCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    slug: str
    title: str
    count: int = Field(ge=0)


class YearCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    year: int
    count: int = Field(ge=0)


class LanguageCount(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    count: int = Field(ge=0)


class Facets(BaseModel):
    """Counts per facet value; each facet ignores its own filter (disjunctive facets)."""

    tags: list[TagCount] = Field(default_factory=list)
    years: list[YearCount] = Field(default_factory=list)
    languages: list[LanguageCount] = Field(default_factory=list)


class BranchError(BaseModel):
    """An optional part of the answer that is missing, and why."""

    model_config = ConfigDict(frozen=True)

    branch: str = Field(examples=["facet-tags"])
    reason: str = Field(examples=["timed out"])


class Result(Book):
    """A book found by a search, with why it matched."""

    highlight: Highlight | None = Field(
        default=None,
        description="With `q` (unless `highlight=false`): the title and author names, "
        "cut into segments marked where they matched.",
    )


class SearchResponse(BaseModel):
    """One page of results, the total count, the facets, and where the page sits.

    ``partial`` is true when an optional part (a facet, the suggestions) failed
    or ran out of time; ``errors`` then says which and why.
    """

    results: list[Result]
    count: int = Field(ge=0, description="Total number of matching books.")
    page: int = Field(default=1, ge=1, description="This page's number (1 for a page by cursor).")
    size: int = Field(default=20, ge=1, description="Results per page.")
    pages: int = Field(
        default=0, ge=0, description="Pages a `page` number can reach (the window ends at 10,000)."
    )
    next: str | None = Field(
        default=None,
        description="The next page, as a relative URL keeping every parameter; also in `Link`.",
        examples=["?q=hunger%20games&page=2"],
    )
    prev: str | None = Field(
        default=None,
        description="The previous page (none for a page by cursor); also in `Link`.",
        examples=[None],
    )
    cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` to continue after this page, past any depth; "
        "none on the last page.",
    )
    facets: Facets
    partial: bool = False
    errors: list[BranchError] = Field(default_factory=list)
    suggestions: list[str] = Field(
        default_factory=list, description="Corrected queries, when the text found few books."
    )
    trace: Trace | None = Field(
        default=None, description="With `trace=1`: the request's task timeline."
    )


T = TypeVar("T")

_RESULTS = TypeAdapter(list[Result])


def _shaped(what: str, parse: Callable[[], T]) -> T:
    try:
        return parse()
    except (KeyError, TypeError, IndexError, ValueError, AttributeError, ValidationError) as error:
        raise ResponseShapeError(
            f"unexpected Elasticsearch answer for {what}: {error!r:.200}"
        ) from error


def parse_facet(facet: Facet, answer: Mapping[str, Any]) -> list[Any]:
    """The counts of one facet's answer."""

    def parse() -> list[Any]:
        aggregation = answer["aggregations"][facet]
        if facet == "tags":
            return [
                TagCount(
                    slug=bucket["key"],
                    title=(bucket["title"]["buckets"] or [{"key": bucket["key"]}])[0]["key"],
                    count=bucket["books"]["doc_count"],
                )
                for bucket in aggregation["slugs"]["buckets"]
            ]
        if facet == "years":
            return [YearCount(year=b["key"], count=b["doc_count"]) for b in aggregation["buckets"]]
        return [LanguageCount(code=b["key"], count=b["doc_count"]) for b in aggregation["buckets"]]

    return _shaped(f"the {facet} facet", parse)


def parse_results(
    answer: Mapping[str, Any], *, marked: bool = False, keep: int | None = None
) -> tuple[list[Result], int]:
    """The first *keep* results of a hits answer (highlighted if *marked*), and the total."""

    def parse() -> tuple[list[Result], int]:
        hits = answer["hits"]
        # One validation call for the page, not one per book (fields the model
        # does not know, such as ``title_sort``, are ignored).
        sources = [hit["_source"] for hit in hits["hits"][:keep]]
        if marked:
            sources = [
                {
                    **source,
                    "highlight": book_highlight(
                        hit,
                        str(source["title"]),
                        [str(author["name"]) for author in source.get("authors") or []],
                    ),
                }
                for hit, source in zip(hits["hits"], sources, strict=False)
            ]
        return _RESULTS.validate_python(sources), int(hits["total"]["value"])

    return _shaped("hits", parse)


def branch_errors(failures: Mapping[str, str]) -> list[BranchError]:
    """What a partial answer says of the branches that failed (*failures*: reason by name)."""
    return [BranchError(branch=name, reason=reason) for name, reason in failures.items()]


def parse_search(
    answers: Mapping[str, Mapping[str, Any]],
    failures: Mapping[str, str] | None = None,
    suggestions: list[str] | None = None,
    *,
    marked: bool = False,
    keep: int | None = None,
) -> SearchResponse:
    """The response to a search, from the answers of its branches (by branch name).

    The hits answer is required; a facet without an answer is left empty and
    its failure reported (*failures*: reason by branch name). *keep* and
    *marked* are :func:`parse_results`'; paging is the caller's to fill in.
    """
    books, count = parse_results(answers[HITS_BRANCH], marked=marked, keep=keep)
    errors = branch_errors(failures or {})
    if answers[HITS_BRANCH].get("timed_out") is True:
        errors.insert(
            0,
            BranchError(
                branch=HITS_BRANCH, reason="Elasticsearch timed out; results may be incomplete"
            ),
        )
    facets = Facets(
        **{
            facet: parse_facet(facet, answers[facet_branch(facet)])
            for facet in FACETS
            if facet_branch(facet) in answers
        }
    )
    return SearchResponse(
        results=books,
        count=count,
        facets=facets,
        partial=bool(errors),
        errors=errors,
        suggestions=suggestions or [],
    )
