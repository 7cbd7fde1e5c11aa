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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from trio_books.core.cursor import cursor_after, seal
from trio_books.core.query import MAX_RESULT_WINDOW

Params = Sequence[tuple[str, str]]
# Bytes: within the 4 KB a reverse proxy's header buffer holds by default.
MAX_LINK_HEADER = 2048


@dataclass(frozen=True)
class Paging:
    """A page's place: its number and size, how many pages, and its neighbours' links."""

    page: int
    size: int
    pages: int
    next: str | None
    prev: str | None


def page_count(total: int, size: int, window: int = MAX_RESULT_WINDOW) -> int:
    """Pages of *size* that *total* books fill, up to the last one a number can reach.

    *window*: the deepest result a page may reach (``page × size``).
    """
    return min(math.ceil(total / size), window // size)


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
    window: int = MAX_RESULT_WINDOW,
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
        window: the deepest result a numbered page may reach.
    """
    pages = page_count(total, size, window)
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


def link_header(next_page: str | None, prev_page: str | None) -> str | None:
    """The RFC 8288 ``Link`` header for a page's neighbours, or None if it has none.

    None too when it would pass :data:`MAX_LINK_HEADER` (a long text, encoded
    twice): a proxy's header buffer would refuse the answer. The body keeps
    the links.
    """
    parts = [
        f'<{target}>; rel="{rel}"'
        for rel, target in (("next", next_page), ("prev", prev_page))
        if target is not None
    ]
    header = ", ".join(parts)
    return header if 0 < len(header) <= MAX_LINK_HEADER else None


def answer_paging(
    params: Params,
    hits: Sequence[Mapping[str, Any]],
    *,
    sort: str,
    page: int,
    size: int,
    total: int,
    by_cursor: bool,
    key: bytes,
    window: int = MAX_RESULT_WINDOW,
    complete: bool = True,
) -> tuple[Paging, str | None]:
    """The paging of an answer with these raw *hits*, and the sealed cursor after its last.

    A page by cursor asks for one hit more than it keeps, which tells whether
    another follows; a numbered page knows from *total*. The last page has no
    cursor, nor does a page Elasticsearch did not finish (*complete* false:
    it timed out), whose last hit may not be the one before the next page's.
    """
    kept = hits[:size]
    more = len(hits) > size if by_cursor else page * size < total
    last = cursor_after(sort, kept[-1]) if kept and more and complete else None
    sealed = seal(last, key) if last is not None else None
    found = paging(
        params,
        page=1 if by_cursor else page,
        size=size,
        total=total,
        cursor=sealed,
        by_cursor=by_cursor,
        more=more,
        window=window,
    )
    return found, sealed
