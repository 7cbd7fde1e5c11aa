"""The asyncio build's cut at the graceful timeout (see :mod:`trio_books.api.graceful`).

Cancelling the app's call would not do here. Quart runs each request as two
tasks, one answering and one listening to the client, and waits on them with
``asyncio.wait``; cancelling that wait leaves both tasks running, so the
search would go on unowned after the 503. The cut speaks Quart's own language
instead: the listening task hears ``http.disconnect``, as it would if the
client had hung up, and Quart cancels the answering task and waits for it to
end. Then this middleware answers 503. An answer whose head has gone out is
left to finish. (The Trio build's mirror, :mod:`trio_books.trio.graceful`,
cancels one scope, and the nursery inside Quart-Trio takes both tasks down.)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from trio_books.api.asgi import ASGIApp, Message, Receive, Scope, Send
from trio_books.api.graceful import cut_after, send_cut, watch_start

DISCONNECT: Message = {"type": "http.disconnect"}


@dataclass(eq=False)
class _Request:
    """One request's state for the cut (hashed by identity)."""

    # The listening task, while it waits in ``receive``.
    waiting: asyncio.Task[object] | None = None
    # The cut came; from now on ``receive`` says the client has gone.
    cut: bool = False
    # The app was told the client had gone, though it had not: the cut's to answer.
    told: bool = False
    # The answer's head has gone out: no cut, and nothing more to answer.
    started: bool = False


class AsyncioGracefulCut:
    """Wrap *app*: after :meth:`drain`, requests still running near the graceful timeout get 503."""

    def __init__(self, app: ASGIApp, graceful_timeout: float) -> None:
        self.app = app
        self.graceful_timeout = graceful_timeout
        self.cut = 0
        self._cutting = False
        self._running: set[_Request] = set()

    def drain(self) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(cut_after(self.graceful_timeout), self._cut_all)

    def _cut_all(self) -> None:
        self._cutting = True
        for request in self._running:
            request.cut = True
            if request.waiting is not None:
                request.waiting.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _Request(cut=self._cutting)

        async def receive_until_cut() -> Message:
            if request.cut:
                request.told = True
                return DISCONNECT
            listener = asyncio.current_task()
            request.waiting = listener
            try:
                return await receive()
            except asyncio.CancelledError:
                if not request.cut or listener is None:
                    raise
                # The cut's own cancellation, taken back: the app hears the client leave.
                listener.uncancel()
                request.told = True
                return DISCONNECT
            finally:
                request.waiting = None

        def answer_begun() -> None:
            # An answer under way is left to finish: the server's own timeout bounds it.
            request.started = True
            self._running.discard(request)

        self._running.add(request)
        try:
            await self.app(scope, receive_until_cut, watch_start(send, answer_begun))
        finally:
            self._running.discard(request)
        if request.told and not request.started:
            self.cut += 1
            await send_cut(send)
