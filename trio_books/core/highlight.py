"""Why a book matched: its title and author names cut into marked and unmarked segments.

Elasticsearch marks matched words with tags of our choosing. The tags here are
two private-use characters, not HTML: the answer is a list of ``{"text",
"match"}`` segments, so there is no markup for a client to escape and nothing
a catalogue entry could inject. Titles are highlighted by the search's own
highlighter; author names live in nested documents, so the nested author query
returns its matching authors as inner hits, each highlighted, and each known
by its place in the book's author list (``_nested.offset``).

A highlight that does not put back together into the stored text (a text that
itself holds a marker character) is dropped for the plain text, unmarked:
a wrong mark would be worse than none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

START = "\ue000"
END = "\ue001"
# At most this many of a book's authors come back marked; the rest unmarked.
MAX_MARKED_AUTHORS = 20
AUTHORS_HITS = "authors"


class Segment(BaseModel):
    """A run of text, matched by the search or not."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(min_length=1, examples=["Collins"])
    match: bool = Field(examples=[True])


class Highlight(BaseModel):
    """A result's title and author names as segments; joined, each is the stored text."""

    model_config = ConfigDict(frozen=True)

    title: list[Segment]
    authors: list[list[Segment]] = Field(
        description="One list of segments per author, in the book's order."
    )


def _options() -> dict[str, Any]:
    # number_of_fragments 0: the whole field, not snippets of it.
    return {"pre_tags": [START], "post_tags": [END], "number_of_fragments": 0}


def title_highlight() -> dict[str, Any]:
    """The search body's ``highlight``: titles, marked whole."""
    return {**_options(), "fields": {"title": {}}}


def author_inner_hits() -> dict[str, Any]:
    """The nested author query's ``inner_hits``: the matching authors, marked, by position."""
    return {
        "name": AUTHORS_HITS,
        "size": MAX_MARKED_AUTHORS,
        "_source": False,
        "highlight": {**_options(), "fields": {"authors.name": {}}},
    }


def segments(marked: str, plain: str) -> list[Segment]:
    """*marked* (text with :data:`START`/:data:`END` around matches) as segments of *plain*."""
    if START in plain or END in plain:
        return [Segment(text=plain, match=False)]
    found: list[Segment] = []
    rest = marked
    while rest:
        start = rest.find(START)
        if start < 0:
            found.append(Segment(text=rest, match=False))
            break
        end = rest.find(END, start)
        if end < 0:
            return [Segment(text=plain, match=False)]
        if start:
            found.append(Segment(text=rest[:start], match=False))
        if end > start + 1:
            found.append(Segment(text=rest[start + 1 : end], match=True))
        rest = rest[end + 1 :]
    merged: list[Segment] = []
    for segment in found:
        if merged and merged[-1].match == segment.match:
            merged[-1] = Segment(text=merged[-1].text + segment.text, match=segment.match)
        else:
            merged.append(segment)
    if "".join(segment.text for segment in merged) != plain:
        return [Segment(text=plain, match=False)]
    return merged


def _dig(value: object, *keys: str) -> object:
    """``value[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _first(highlight: object, field: str) -> str | None:
    fragments = _dig(highlight, field)
    if isinstance(fragments, list) and fragments and isinstance(fragments[0], str):
        return fragments[0]
    return None


def _marked_authors(hit: Mapping[str, Any]) -> dict[int, str]:
    """The marked name of each matching author, by its place in the book's list."""
    # Highlighting is a courtesy: a part of the answer not in its usual shape
    # leaves the text unmarked rather than failing the search.
    inner = _dig(hit, "inner_hits", AUTHORS_HITS, "hits", "hits")
    marked: dict[int, str] = {}
    for author_hit in inner if isinstance(inner, list) else []:
        offset = _dig(author_hit, "_nested", "offset")
        name = _first(_dig(author_hit, "highlight"), "authors.name")
        if isinstance(offset, int) and not isinstance(offset, bool) and name is not None:
            marked[offset] = name
    return marked


def book_highlight(hit: Mapping[str, Any], title: str, authors: list[str]) -> Highlight:
    """The highlight of a book (its *title* and author names), from its raw search hit.

    Unmarked wherever the hit marks nothing.
    """
    marked_title = _first(hit.get("highlight"), "title")
    marked = _marked_authors(hit)
    return Highlight(
        title=segments(marked_title, title) if marked_title else [Segment(text=title, match=False)],
        authors=[
            segments(marked[at], name) if at in marked else [Segment(text=name, match=False)]
            for at, name in enumerate(authors)
        ],
    )
