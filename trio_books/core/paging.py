"""Where a page of results sits, and the links to the pages beside it.

A search answers one page: ``page`` and ``size`` say which, ``pages`` how many
a client may reach by number (the result window caps ``page × size`` at
10,000), and ``next``/``prev`` are links to the neighbours, also sent as an
RFC 8288 ``Link`` header. A link is a relative reference holding only a query
string (``?q=dune&page=3``): it keeps every parameter the client sent, in its
order, and resolves against whatever URL the client used, so it still works
when the service is mounted under a prefix.

Numbered pages end at the window; the page that reaches it links on with a
cursor (:mod:`trio_books.core.cursor`), and so does every page asked for by
cursor. Cursors only go forward: a page asked for by cursor has no ``prev``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from trio_books.core.query import MAX_RESULT_WINDOW

Params = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Paging:
    """A page's place: its number and size, how many pages, and its neighbours' links."""

    page: int
    size: int
    pages: int
    next: str | None
    prev: str | None


def page_count(total: int, size: int) -> int:
    """Pages of *size* that *total* books fill, up to the last one a number can reach."""
    return min(math.ceil(total / size), MAX_RESULT_WINDOW // size)


def link(params: Params, **changes: str | None) -> str:
    """*params* with *changes* (None: removed), as a query-only relative reference.

    A changed parameter keeps its place; a new one goes last.
    """
    kept: list[tuple[str, str]] = []
    done: set[str] = set()
    for name, value in params:
        if name not in changes:
            kept.append((name, value))
        elif name not in done:
            done.add(name)
            new = changes[name]
            if new is not None:
                kept.append((name, new))
    kept += [(name, new) for name, new in changes.items() if name not in done and new is not None]
    return "?" + urlencode(kept, quote_via=quote)


def paging(
    params: Params,
    *,
    page: int,
    size: int,
    total: int,
    cursor: str | None,
    by_cursor: bool = False,
    more: bool = False,
) -> Paging:
    """The paging of one answer.

    Args:
        params: the request's query parameters, in order, repeats included.
        page: the page number asked for (1 when asked for by cursor).
        total: the books matching, in all.
        cursor: the sealed cursor after this page's last book, if it has one.
        by_cursor: the page was asked for by cursor.
        more: a page asked for by cursor has books after it. (A numbered page
            knows from *total*; a cursor's page does not know where it is.)
    """
    pages = page_count(total, size)
    following: str | None = None
    if by_cursor:
        if more and cursor:
            following = link(params, cursor=cursor)
        return Paging(page=page, size=size, pages=pages, next=following, prev=None)
    if page < pages:
        following = link(params, page=str(page + 1))
    elif page == pages and page * size < total and cursor:
        # The window's end: numbers stop, the cursor goes on.
        following = link(params, page=None, cursor=cursor)
    previous = link(params, page=str(min(page - 1, max(pages, 1)))) if page > 1 else None
    return Paging(page=page, size=size, pages=pages, next=following, prev=previous)


def link_header(found: Paging) -> str | None:
    """The RFC 8288 ``Link`` header for *found*'s neighbours, or None if it has none."""
    parts = [
        f'<{target}>; rel="{rel}"'
        for rel, target in (("next", found.next), ("prev", found.prev))
        if target is not None
    ]
    return ", ".join(parts) or None
