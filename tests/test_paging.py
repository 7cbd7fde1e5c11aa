"""A page's place and its neighbours' links, as literal data."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import pytest

from trio_books.core.cursor import Cursor, unseal
from trio_books.core.paging import Paging, answer_paging, link, link_header, page_count, paging

PARAMS = [("q", "hunger games"), ("tags", "young-adult"), ("tags", "dystopia"), ("size", "10")]


@pytest.mark.parametrize(
    ("total", "size", "pages"),
    [
        (0, 10, 0),
        (1, 10, 1),
        (10, 10, 1),
        (11, 10, 2),
        (10_000, 100, 100),
        (10_001, 100, 100),
        (54_321, 7, 1428),
        (54_321, 100, 100),
    ],
)
def test_pages_stop_where_a_number_can_reach(total: int, size: int, pages: int) -> None:
    assert page_count(total, size) == pages


def test_a_link_keeps_every_parameter_in_its_place() -> None:
    assert link([*PARAMS, ("page", "2"), ("sort", "title")], page="3") == (
        "?q=hunger%20games&tags=young-adult&tags=dystopia&size=10&page=3&sort=title"
    )
    # A parameter not there goes last; one set to None goes.
    assert (
        link(PARAMS, page="2") == "?q=hunger%20games&tags=young-adult&tags=dystopia&size=10&page=2"
    )
    assert link([("page", "2"), ("q", "x")], page=None, cursor="abc.def") == "?q=x&cursor=abc.def"


def test_a_link_encodes_what_a_query_string_cannot_hold() -> None:
    target = link([("q", "Les Misérables & co #1 +/?=")], page="2")
    assert target == "?q=Les%20Mis%C3%A9rables%20%26%20co%20%231%20%2B%2F%3F%3D&page=2"
    assert parse_qsl(target[1:]) == [("q", "Les Misérables & co #1 +/?="), ("page", "2")]


def test_the_first_of_many_pages_links_to_the_next_only() -> None:
    found = paging(PARAMS, page=1, size=10, total=25, cursor="c")
    assert found == Paging(
        page=1,
        size=10,
        pages=3,
        next="?q=hunger%20games&tags=young-adult&tags=dystopia&size=10&page=2",
        prev=None,
    )
    assert link_header(found.next, found.prev) == (
        '<?q=hunger%20games&tags=young-adult&tags=dystopia&size=10&page=2>; rel="next"'
    )


def test_a_middle_page_links_both_ways() -> None:
    found = paging([("q", "a"), ("page", "2")], page=2, size=10, total=25, cursor="c")
    assert (found.next, found.prev) == ("?q=a&page=3", "?q=a&page=1")
    assert (
        link_header(found.next, found.prev)
        == '<?q=a&page=3>; rel="next", <?q=a&page=1>; rel="prev"'
    )


def test_the_last_page_links_back_only() -> None:
    found = paging([("page", "3")], page=3, size=10, total=25, cursor="c")
    assert (found.pages, found.next, found.prev) == (3, None, "?page=2")


def test_a_page_past_the_end_links_back_to_the_last() -> None:
    found = paging([("page", "9")], page=9, size=10, total=25, cursor=None)
    assert (found.next, found.prev) == (None, "?page=3")


def test_no_books_no_links() -> None:
    found = paging([("q", "zzz")], page=1, size=10, total=0, cursor=None)
    assert found == Paging(page=1, size=10, pages=0, next=None, prev=None)
    assert link_header(found.next, found.prev) is None


def test_the_windows_last_page_links_on_by_cursor() -> None:
    found = paging(
        [("q", "a"), ("page", "100"), ("size", "100")],
        page=100,
        size=100,
        total=54_321,
        cursor="abc.def",
    )
    assert (found.pages, found.next, found.prev) == (
        100,
        "?q=a&size=100&cursor=abc.def",
        "?q=a&page=99&size=100",
    )


def test_the_windows_last_page_with_nothing_after_it_links_nowhere() -> None:
    found = paging(
        [("page", "100"), ("size", "100")], page=100, size=100, total=10_000, cursor="abc.def"
    )
    assert found.next is None


def test_a_page_by_cursor_goes_forward_only() -> None:
    params = [("q", "a"), ("cursor", "old.one")]
    found = paging(
        params, page=1, size=10, total=54_321, cursor="new.one", by_cursor=True, more=True
    )
    assert (found.next, found.prev) == ("?q=a&cursor=new.one", None)
    last = paging(
        params, page=1, size=10, total=54_321, cursor="new.one", by_cursor=True, more=False
    )
    assert (last.next, last.prev) == (None, None)


def test_a_changed_parameter_given_twice_appears_once() -> None:
    assert link([("page", "1"), ("q", "a"), ("page", "2")], page="3") == "?page=3&q=a"


KEY = b"k" * 32


def raw(book_id: int) -> dict[str, Any]:
    return {"_id": str(book_id), "sort": ["t", book_id]}


def test_an_answer_by_page_gives_a_cursor_unless_it_is_the_last() -> None:
    hits = [raw(1), raw(2)]
    found, cursor = answer_paging(
        [("sort", "title"), ("size", "2")],
        hits,
        sort="title",
        page=1,
        size=2,
        total=5,
        by_cursor=False,
        key=KEY,
    )
    assert cursor is not None
    assert unseal(cursor, KEY, sort="title", width=2) == Cursor("title", ("t", 2))
    assert (found.next, found.pages) == ("?sort=title&size=2&page=2", 3)
    last, none = answer_paging(
        [], [raw(5)], sort="title", page=3, size=2, total=5, by_cursor=False, key=KEY
    )
    assert (none, last.next) == (None, None)


def test_an_answer_by_cursor_keeps_size_and_knows_more_from_the_extra_hit() -> None:
    found, cursor = answer_paging(
        [("cursor", "old")],
        [raw(3), raw(4), raw(5)],
        sort="title",
        page=1,
        size=2,
        total=5,
        by_cursor=True,
        key=KEY,
    )
    assert cursor is not None
    assert unseal(cursor, KEY, sort="title", width=2).after == ("t", 4)
    assert (found.next, found.prev) == (f"?cursor={cursor}", None)
    ended, none = answer_paging(
        [("cursor", "old")],
        [raw(5)],
        sort="title",
        page=1,
        size=2,
        total=5,
        by_cursor=True,
        key=KEY,
    )
    assert (none, ended.next) == (None, None)


def test_a_smaller_window_ends_the_numbers_sooner_and_links_on_by_cursor() -> None:
    assert page_count(54_321, 20, window=1_000) == 50
    found = paging([("page", "50")], page=50, size=20, total=54_321, cursor="c.d", window=1_000)
    assert (found.pages, found.next) == (50, "?cursor=c.d")


def test_no_cursor_after_a_page_elasticsearch_did_not_finish() -> None:
    found, cursor = answer_paging(
        [],
        [raw(1), raw(2)],
        sort="title",
        page=1,
        size=2,
        total=5,
        by_cursor=False,
        key=KEY,
        complete=False,
    )
    assert cursor is None
    assert found.next == "?page=2"


def test_a_link_header_too_long_for_a_proxy_is_left_out() -> None:
    long_text = "?q=" + "%E6%9D%B1" * 300 + "&page=2"
    assert link_header(long_text, None) is None
    assert link_header("?page=2", None) == '<?page=2>; rel="next"'
