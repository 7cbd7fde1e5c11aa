"""Shedding at the door: a 503 for work past every slot and queue place, before Quart sees it.

The admission gate (:mod:`trio_books.api.admission`) runs inside a route, after
Quart has built the request and run its hooks, which costs about a millisecond
of CPU. In a flood that millisecond, paid by every request shed, is what the
service runs out of. So an ASGI middleware counts the gated requests inside
the app and, once there are as many as the gate could ever admit or queue,
answers the next one itself from pre-encoded bytes. It needs no event loop
primitive, so both builds wrap their app with it as it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from trio_books.api.security import HEADERS, JSON_POLICY
from trio_books.errors import Overloaded, error_body

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class DoorShedder:
    """Wrap *app*: requests under *prefix* past *limit* at once get an immediate 503.

    Args:
        app: the ASGI app (``quart_app.asgi_app``).
        prefix: paths under it are gated (the API); health checks and docs are not.
        limit: gated requests allowed inside the app at once.
        retry_after: seconds, for ``Retry-After``.
    """

    def __init__(self, app: ASGIApp, *, prefix: str, limit: int, retry_after: int) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/") + "/"
        self.limit = limit
        self.inside = 0
        self.shed = 0
        error = Overloaded("the service is at capacity; retry shortly", retry_after=retry_after)
        self._body = orjson.dumps(error_body(error))
        self._headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
            (b"retry-after", str(retry_after).encode()),
            (b"content-security-policy", JSON_POLICY.encode()),
            *((name.lower().encode(), value.encode()) for name, value in HEADERS.items()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        if self.inside >= self.limit:
            self.shed += 1
            await self._refuse(send)
            return
        self.inside += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inside -= 1

    async def _refuse(self, send: Send) -> None:
        headers = [*self._headers, (b"x-request-id", uuid.uuid4().hex.encode())]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": self._body})
