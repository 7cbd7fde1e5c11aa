"""The ASGI types the app's own middleware share, and the error answers they send themselves.

The door shedder, the request tally, the request ids and the graceful cut
each wrap the app below Quart, where a request is a scope and two callables.
Two of them answer on their own, without Quart: from JSON bytes and headers
built once, carrying the same security headers as every answer of the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from trio_books.api.security import HEADERS, JSON_POLICY
from trio_books.errors import TrioBooksError, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


def error_answer(error: TrioBooksError, *extra: tuple[str, str]) -> tuple[Headers, bytes]:
    """*error*'s JSON body and the headers to send it with, *extra* (name, value) among them."""
    body = orjson.dumps(error_body(error))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.encode(), value.encode()) for name, value in extra),
        (b"content-security-policy", JSON_POLICY.encode()),
        *((name.lower().encode(), value.encode()) for name, value in HEADERS.items()),
    ]
    return headers, body
