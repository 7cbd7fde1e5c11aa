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

import logging

from trio_books.api.asgi import ASGIApp, Receive, Scope, Send, error_answer
from trio_books.api.proxying import app_path
from trio_books.errors import Overloaded
from trio_books.logs import bounded, current_request_id, printable, request_id

access_log = logging.getLogger("trio_books.access")
# A door-shed request is logged once in this many (and the first always).
SHED_LOG_EVERY = 100
# Never shed, whatever the prefix (``API_PREFIX=""`` puts the API at the root): a
# load balancer that sees its health check refused takes a busy worker out of
# service, which turns an overload into an outage. Nor the metrics: an overloaded
# service is the one whose figures matter most.
NEVER_SHED = frozenset({"/", "/healthz", "/readyz", "/metrics"})


class DoorShedder:
    """Wrap *app*: requests under *prefix* past *limit* at once get an immediate 503.

    Args:
        app: the ASGI app (``quart_app.asgi_app``).
        prefix: paths under it are gated (the API), except :data:`NEVER_SHED`.
        limit: gated requests allowed inside the app at once.
        retry_after: seconds, for ``Retry-After``.
    """

    def __init__(
        self, app: ASGIApp, *, prefix: str, limit: int, retry_after: int, access_log: bool = True
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.prefix = prefix.rstrip("/") + "/"
        self.limit = limit
        self.inside = 0
        self.shed = 0
        error = Overloaded("the service is at capacity; retry shortly", retry_after=retry_after)
        self._headers, self._body = error_answer(error, ("retry-after", str(retry_after)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = app_path(scope)
        if scope["type"] != "http" or not path.startswith(self.prefix) or path in NEVER_SHED:
            await self.app(scope, receive, send)
            return
        if self.inside >= self.limit:
            self.shed += 1
            await self._refuse(scope, send)
            return
        self.inside += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inside -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = request_id(incoming.decode("latin-1") if incoming is not None else None)
        headers = [*self._headers, (b"x-request-id", rid.encode())]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": self._body})
        # Logged like any answer, but in a flood only one in SHED_LOG_EVERY: the
        # door exists because each shed request must cost next to nothing.
        if self.access_log and (self.shed == 1 or self.shed % SHED_LOG_EVERY == 0):
            current_request_id.set(rid)  # this request's task only
            path = printable(bounded(app_path(scope), 256))
            method = printable(bounded(scope["method"], 16))
            access_log.info(
                "%s %s 503 shed at the door (%d so far)",
                method,
                path,
                self.shed,
                extra={"method": method, "path": path, "status": 503, "shed": self.shed},
            )
