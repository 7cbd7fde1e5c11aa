"""Deep-paging cursors: what was sealed comes back; anything else is refused with a reason."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_books.core.cursor import (
    MAX_CURSOR_LENGTH,
    Cursor,
    CursorError,
    check_key,
    cursor_after,
    seal,
    unseal,
)

KEY = b"k" * 32
OTHER_KEY = b"o" * 32

# The shapes Elasticsearch really gives back for our sort orders (seen on 8.19):
# a score and a book id; a missing integer sorted last ascending; a missing float
# sorted last descending ("-Infinity"); a title sort key.
REAL = [
    Cursor("relevance", (7.4117355, 1)),
    Cursor("year", (2147483647, 9999)),
    Cursor("-year", (-2147483648, 12)),
    Cursor("title", ("the hunger games (the hunger games, #1)", 1)),
    Cursor("rating", ("-Infinity", 0, 42)),
]


@pytest.mark.parametrize("cursor", REAL, ids=[c.sort for c in REAL])
def test_a_sealed_cursor_comes_back_as_it_was(cursor: Cursor) -> None:
    text = seal(cursor, KEY)
    assert text.isascii()
    assert not set(text) & set(" =+/")
    assert unseal(text, KEY, sort=cursor.sort, width=len(cursor.after)) == cursor


values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)


@given(st.lists(values, min_size=1, max_size=3))
def test_any_values_round_trip(after: list[int | float | str | None]) -> None:
    cursor = Cursor("title", tuple(after))
    assert unseal(seal(cursor, KEY), KEY, sort="title", width=len(after)) == cursor


@given(st.data())
def test_any_one_character_changed_is_refused(data: st.DataObject) -> None:
    text = seal(REAL[3], KEY)
    at = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    new = data.draw(st.sampled_from(alphabet).filter(lambda c: c != text[at]))
    changed = text[:at] + new + text[at + 1 :]
    # Base64 of a length not a multiple of 4 has spare low bits in its last
    # character: a change there may decode to the same bytes, the same cursor.
    try:
        same = unseal(changed, KEY, sort="title", width=2)
    except CursorError:
        return
    assert same == REAL[3]


def test_another_keys_cursor_is_refused() -> None:
    with pytest.raises(CursorError, match="key change"):
        unseal(seal(REAL[0], OTHER_KEY), KEY, sort="relevance", width=2)


def test_a_forged_cursor_is_refused() -> None:
    # The client's own sort values, with a tag made up.
    body = base64.urlsafe_b64encode(b'["title",["a",1]]').rstrip(b"=").decode()
    with pytest.raises(CursorError, match="not a cursor this service gave out"):
        unseal(body + ".AAAAAAAAAAAAAAAAAAAAAA", KEY, sort="title", width=2)


def test_a_cursor_of_another_sort_is_refused_and_says_which() -> None:
    with pytest.raises(CursorError, match="continues sort=year, not sort=title"):
        unseal(seal(REAL[1], KEY), KEY, sort="title", width=2)


@pytest.mark.parametrize(
    "text",
    ["", "abc", ".", "a.b", "é.é", "!!!!.????", "a" * (MAX_CURSOR_LENGTH + 1)],
    ids=["empty", "no dot", "only dot", "short", "not ascii", "not base64", "too long"],
)
def test_malformed_text_is_refused(text: str) -> None:
    with pytest.raises(CursorError):
        unseal(text, KEY, sort="title", width=2)


def test_a_long_cursor_is_refused_before_it_is_read() -> None:
    with pytest.raises(CursorError, match=f"at most {MAX_CURSOR_LENGTH}"):
        unseal("a" * (MAX_CURSOR_LENGTH + 1) + "." + "b", KEY, sort="title", width=2)


def sealed_payload(payload: bytes) -> str:
    """*payload* under a valid tag: what only a holder of the key could make."""
    import hashlib
    import hmac

    tag = hmac.new(KEY, payload, hashlib.sha256).digest()[:16]
    b64 = base64.urlsafe_b64encode
    return b64(payload).rstrip(b"=").decode() + "." + b64(tag).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"sort": "title"}',
        b'["title", "a"]',
        b'[1, ["a", 1]]',
        b'["title", [true, 1]]',
    ],
    ids=["not json", "object", "values not a list", "sort not text", "a boolean value"],
)
def test_a_sealed_payload_of_the_wrong_shape_is_refused(payload: bytes) -> None:
    with pytest.raises(CursorError):
        unseal(sealed_payload(payload), KEY, sort="title", width=2)


def test_a_sealed_payload_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(CursorError):
        unseal(sealed_payload(b'["title", ["a", 1, 2]]'), KEY, sort="title", width=2)
    assert unseal(sealed_payload(b'["title", ["a", 1]]'), KEY, sort="title", width=2) == Cursor(
        "title", ("a", 1)
    )


def test_the_cursor_after_a_hit_holds_its_sort_values() -> None:
    hit = {"_id": "42", "sort": ["-Infinity", 0, 42]}
    assert cursor_after("rating", hit) == Cursor("rating", ("-Infinity", 0, 42))
    assert cursor_after("rating", {"_id": "42"}) is None
    assert cursor_after("rating", {"sort": [{"a": 1}, 42]}) is None


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        check_key(b"short")
    assert check_key(KEY) == KEY
