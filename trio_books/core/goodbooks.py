"""The goodbooks-10k data set: its tag join, done in one pass over ``book_tags.csv``.

``book_tags.csv`` (``goodreads_book_id, tag_id, count``) holds about a million
rows; only the top few tags of each book are kept, in a bounded heap per book,
so memory grows with the number of books, not of rows.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping

from trio_books.core.books import Tag
from trio_books.core.records import slugify, tag_title, text, whole_number

TOP_TAGS = 10


class TagJoin:
    """The top tags of each book, keyed by the column ``book_tags.csv`` uses.

    Args:
        key: ``"goodreads_book_id"`` (the published data set) or ``"book_id"``.
        tags: book key to its tags, most used first.
    """

    def __init__(self, key: str, tags: Mapping[int, list[Tag]]) -> None:
        self.key = key
        self.tags = tags

    def tags_for(self, row: Mapping[str, object]) -> list[Tag]:
        """The tags of the books.csv *row* (none when it has no such key)."""
        number = whole_number(row.get(self.key))
        return list(self.tags.get(number, [])) if number is not None else []


def tag_names(rows: Iterable[Mapping[str, str]]) -> dict[int, Tag]:
    """``tags.csv`` rows (``tag_id, tag_name``) as tags; names with no letter or digit are dropped."""
    names: dict[int, Tag] = {}
    for row in rows:
        tag_id, name = whole_number(row.get("tag_id")), text(row.get("tag_name"))
        if tag_id is None or name is None:
            continue
        if slug := slugify(name):
            names[tag_id] = Tag(title=tag_title(name), slug=slug)
    return names


def join_tags(
    book_tag_rows: Iterable[Mapping[str, str]],
    names: Mapping[int, Tag],
    *,
    key: str,
    top: int = TOP_TAGS,
) -> TagJoin:
    """The *top* tags of each book by count, one per slug.

    Args:
        book_tag_rows: ``book_tags.csv`` rows.
        names: from :func:`tag_names`.
        key: the book column of ``book_tags.csv``.
        top: tags kept per book.
    """
    heaps: dict[int, list[tuple[int, int]]] = {}
    for row in book_tag_rows:
        book, tag_id = whole_number(row.get(key)), whole_number(row.get("tag_id"))
        count = whole_number(row.get("count")) or 0
        if book is None or tag_id is None or tag_id not in names or count < 0:
            continue
        heap = heaps.setdefault(book, [])
        # Keep a few spare entries: two tag names may share one slug.
        if len(heap) < top * 2:
            heapq.heappush(heap, (count, -tag_id))
        else:
            heapq.heappushpop(heap, (count, -tag_id))
    joined: dict[int, list[Tag]] = {}
    for book, heap in heaps.items():
        chosen: dict[str, Tag] = {}
        for _count, negative_id in sorted(heap, reverse=True):
            tag = names[-negative_id]
            chosen.setdefault(tag.slug, tag)
            if len(chosen) == top:
                break
        joined[book] = list(chosen.values())
    return TagJoin(key, joined)
