"""The asyncio build's cut at the graceful timeout (see :mod:`trio_books.api.graceful`).

Each HTTP request runs inside an ``asyncio.timeout`` of its own. At the stop
signal every such timeout, and every one opened after it, is rescheduled to
the cut, so a request still running then is cancelled where it waits and
answered 503 by this middleware. Mirror: :mod:`trio_books.trio.graceful`.
"""

from __future__ import annotations

import asyncio

from trio_books.api.graceful import ASGIApp, Receive, Scope, Send, cut_after, send_cut, watch_start


class AsyncioGracefulCut:
    """Wrap *app*: after :meth:`drain`, requests still running near the graceful timeout get 503."""

    def __init__(self, app: ASGIApp, graceful_timeout: float) -> None:
        self.app = app
        self.graceful_timeout = graceful_timeout
        self.cut_at: float | None = None
        self.cut = 0
        self._running: set[asyncio.Timeout] = set()

    def drain(self) -> None:
        self.cut_at = asyncio.get_running_loop().time() + cut_after(self.graceful_timeout)
        for timeout in self._running:
            when = timeout.when()
            timeout.reschedule(self.cut_at if when is None else min(when, self.cut_at))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started: list[bool] = []
        request = asyncio.timeout_at(self.cut_at)
        try:
            async with request:
                self._running.add(request)
                try:
                    await self.app(scope, receive, watch_start(send, started))
                finally:
                    self._running.discard(request)
        except TimeoutError:
            # Only the cut is answered here; a timeout of the app's own is the app's to answer.
            if not request.expired():
                raise
            # Cut half-way through an answer, the server's close is all that is left to say.
            if not started:
                self.cut += 1
                await send_cut(send)
