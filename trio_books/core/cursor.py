"""Deep-paging cursors: where the last page ended, sealed so a client can only hand it back.

Paging by ``from`` stops at Elasticsearch's result window (10,000 books).
``search_after`` does not: the next page starts after the last hit's sort
values, with the book id as the tie-break every sort order ends on. Those
values go to the client as an opaque cursor and come back on the next
request, so they are sealed with an HMAC: a client cannot hand Elasticsearch
sort values of its own making, nor a cursor of one sort order for another.

A cursor is ``base64url(json) + "." + base64url(tag)``: the JSON holds the sort
order's name and the values, the tag is HMAC-SHA256 over the JSON with the
service's cursor key, truncated to 16 bytes. A cursor sealed with another key
(another deployment, or a key that changed) is refused like a forged one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

# Longer than any cursor this module seals: the longest is a title sort key of 256
# characters, up to 6 bytes each once JSON-encoded, in base64. Refused unread.
MAX_CURSOR_LENGTH = 2400
# What a sealed cursor looks like (its two base64url parts), for the OpenAPI document.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
TAG_BYTES = 16
# The key's minimum length: a short key would let a client guess it from cursors.
MIN_KEY_BYTES = 16

# One sort value as Elasticsearch gives it back: a score or a field value, or the
# placeholder for a missing one (a large integer, or "-Infinity" for a float).
SortValue = int | float | str | None


class CursorError(ValueError):
    """A cursor that this service did not seal, or sealed for another sort order."""


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the sort order, and the last hit's sort values in it."""

    sort: str
    after: tuple[SortValue, ...]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _tag(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:TAG_BYTES]


def _plain(value: object) -> TypeGuard[SortValue]:
    # bool is an int to Python; no sort value of ours is one.
    return value is None or (isinstance(value, int | float | str) and not isinstance(value, bool))


def check_key(key: bytes) -> bytes:
    """*key*, if long enough to seal cursors with."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"a cursor key is at least {MIN_KEY_BYTES} bytes")
    return key


def seal(cursor: Cursor, key: bytes) -> str:
    """*cursor* as the opaque text a client hands back."""
    payload = orjson.dumps([cursor.sort, list(cursor.after)])
    return f"{_b64(payload)}.{_b64(_tag(key, payload))}"


def unseal(text: str, key: bytes, *, sort: str, width: int) -> Cursor:
    """The cursor in *text*, if this service sealed it for *sort* with *width* values.

    Raises:
        CursorError: too long, malformed, forged, sealed with another key, or for
            another sort order; the message says which, in words fit for a client.
    """
    if len(text) > MAX_CURSOR_LENGTH:
        raise CursorError(f"a cursor is at most {MAX_CURSOR_LENGTH} characters")
    body, dot, tag_text = text.partition(".")
    try:
        if not dot or not text.isascii():
            raise ValueError
        payload, tag = _unb64(body), _unb64(tag_text)
    except (ValueError, binascii.Error):
        raise CursorError("not a cursor this service gave out") from None
    if not hmac.compare_digest(tag, _tag(key, payload)):
        raise CursorError("not a cursor this service gave out (or one from before a key change)")
    # Sealed by us, so well formed; checked all the same, as any input is.
    try:
        decoded: Any = orjson.loads(payload)
        sealed_sort, after = decoded
    except (orjson.JSONDecodeError, TypeError, ValueError):
        raise CursorError("not a cursor this service gave out") from None
    if not isinstance(sealed_sort, str) or not isinstance(after, list):
        raise CursorError("not a cursor this service gave out")
    if sealed_sort != sort:
        raise CursorError(f"this cursor continues sort={sealed_sort}, not sort={sort}")
    if len(after) != width or not all(_plain(value) for value in after):
        raise CursorError("not a cursor this service gave out")
    return Cursor(sort=sealed_sort, after=tuple(after))


def cursor_after(sort: str, last_hit: Mapping[str, Any]) -> Cursor | None:
    """The cursor that continues after *last_hit* (a raw hit with its ``sort`` values)."""
    values = last_hit.get("sort")
    if not isinstance(values, list):
        return None
    plain = [value for value in values if _plain(value)]
    return Cursor(sort=sort, after=tuple(plain)) if len(plain) == len(values) else None
