"""Caps on the size of a request, checked before any route runs.

Pure functions over what the ASGI scope holds (bytes), so both builds share
them. Hypercorn enforces a hard ceiling of its own on the request head
(``h11_max_incomplete_size``, set above these caps in
:func:`trio_books.serving.hypercorn_config`), where it answers a bodiless 431
and closes; below it, these checks answer JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

from trio_books.errors import (
    BodyTooLarge,
    FieldProblem,
    HeadersTooLarge,
    InvalidParameter,
    RequestTooLarge,
    UrlTooLong,
)
from trio_books.settings import Settings


def oversized(
    settings: Settings,
    *,
    raw_path: bytes,
    query_string: bytes,
    headers: Iterable[tuple[bytes, bytes]],
) -> RequestTooLarge | None:
    """The error for the first cap the request head breaks, or ``None``."""
    url_length = len(raw_path) + (len(query_string) + 1 if query_string else 0)
    if url_length > settings.max_url_length:
        return UrlTooLong(
            f"the URL is {url_length} bytes; at most {settings.max_url_length} are accepted"
        )
    count = size = 0
    content_length: bytes | None = None
    chunked = False
    for name, value in headers:
        count += 1
        size += len(name) + len(value)
        lowered = name.lower()
        if lowered == b"content-length":
            content_length = value
        elif lowered == b"transfer-encoding":
            chunked = True
    if count > settings.max_header_count:
        return HeadersTooLarge(f"{count} headers; at most {settings.max_header_count} are accepted")
    if size > settings.max_header_bytes:
        return HeadersTooLarge(
            f"the headers are {size} bytes; at most {settings.max_header_bytes} are accepted"
        )
    if content_length is not None:
        # h11 has already refused a Content-Length that is not a number.
        length = int(content_length.strip() or b"0")
        if length > settings.max_body_bytes:
            return BodyTooLarge(
                f"the body is {length} bytes; at most {settings.max_body_bytes} are accepted"
            )
    elif chunked and settings.max_body_bytes == 0:
        return BodyTooLarge("this API accepts no request body")
    return None


# C0 controls and DEL, except tab, line feed and carriage return (whitespace a search box may send).
_CONTROL = frozenset(range(0x20)) - {0x09, 0x0A, 0x0D} | {0x7F}


def unreadable_query(query_string: bytes) -> InvalidParameter | None:
    """A 422 for a query string that is not UTF-8 once decoded, or that holds control characters.

    Werkzeug would replace broken bytes with U+FFFD and search for that; the
    client meant something else, so it is told instead.
    """
    for pair in query_string.split(b"&"):
        for part in pair.split(b"=", 1):
            raw = unquote_to_bytes(part.replace(b"+", b" "))
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return InvalidParameter(
                    [FieldProblem("query", "invalid_utf8", "the query string is not valid UTF-8")]
                )
            if not _CONTROL.isdisjoint(raw):
                return InvalidParameter(
                    [
                        FieldProblem(
                            "query", "control_character", "control characters are not allowed"
                        )
                    ]
                )
    return None
