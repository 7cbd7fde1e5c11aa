"""The Trio build's cut at the graceful timeout (see :mod:`trio_books.api.graceful`).

Each HTTP request runs inside a cancel scope of its own. At the stop signal
every such scope, and every one opened after it, gets the cut's deadline, so a
request still running then is cancelled where it waits (an Elasticsearch call,
the admission queue) and answered 503 by this middleware. Quart-Trio runs the
request's two tasks (answering, listening) in a nursery inside this scope, so
both end before the 503 goes out: nothing of the request outlives it. Once an
answer's head has gone out its scope leaves the set and loses its deadline.
Mirror: :mod:`trio_books.asyncio.graceful`.
"""

from __future__ import annotations

import math

import trio

from trio_books.api.asgi import ASGIApp, Receive, Scope, Send
from trio_books.api.graceful import cut_after, send_cut, watch_start


class TrioGracefulCut:
    """Wrap *app*: after :meth:`drain`, requests still running near the graceful timeout get 503."""

    def __init__(self, app: ASGIApp, graceful_timeout: float) -> None:
        self.app = app
        self.graceful_timeout = graceful_timeout
        self.cut_at = math.inf
        self.cut = 0
        self._running: set[trio.CancelScope] = set()

    def drain(self) -> None:
        self.cut_at = trio.current_time() + cut_after(self.graceful_timeout)
        for scope in self._running:
            scope.deadline = min(scope.deadline, self.cut_at)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = trio.CancelScope(deadline=self.cut_at)

        def answer_begun() -> None:
            # An answer under way is left to finish: the server's own timeout bounds it.
            self._running.discard(request)
            request.deadline = math.inf

        self._running.add(request)
        try:
            with request:
                await self.app(scope, receive, watch_start(send, answer_begun))
        finally:
            self._running.discard(request)
        if request.cancelled_caught:
            self.cut += 1
            await send_cut(send)
