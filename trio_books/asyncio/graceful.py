"""The asyncio build's cut at the graceful timeout (see :mod:`trio_books.api.graceful`).

Cancelling the app's call would not do here. Quart runs each request as two
tasks, one answering and one listening to the client, and waits on them with
``asyncio.wait``; cancelling that wait leaves both tasks running, so the
search would go on unowned after the 503. The cut speaks Quart's own language
instead: the listening task hears ``http.disconnect``, as it would if the
client had hung up, and Quart cancels the answering task and waits for it to
end. Then this middleware answers 503. An answer whose head has gone out is
left to finish. The listener waits under an ``asyncio.timeout`` of its own
whose deadline the stop signal moves, as the Trio build's mirror
(:mod:`trio_books.trio.graceful`) moves each request's cancel scope, whose
nursery inside Quart-Trio takes both tasks down: no timer outlives its request.
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

    # The listening task's timeout, while it waits in ``receive``.
    waiting: asyncio.Timeout | None = None
    # The app was told the client had gone, though it had not: the cut's to answer.
    told: bool = False
    # The answer's head has gone out: no cut, and nothing more to answer.
    started: bool = False

    def wait_until(self, when: float | None) -> None:
        """Move the listener's deadline, unless it is not waiting or its time has come."""
        if self.waiting is not None and not self.waiting.expired():
            self.waiting.reschedule(when)


class AsyncioGracefulCut:
    """Wrap *app*: after :meth:`drain`, requests still running near the graceful timeout get 503."""

    def __init__(self, app: ASGIApp, graceful_timeout: float) -> None:
        self.app = app
        self.graceful_timeout = graceful_timeout
        # The event loop's time of the cut; None until the stop signal.
        self.cut_at: float | None = None
        self.cut = 0
        self._running: set[_Request] = set()

    def drain(self) -> None:
        self.cut_at = asyncio.get_running_loop().time() + cut_after(self.graceful_timeout)
        for request in self._running:
            request.wait_until(self.cut_at)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _Request()
        loop = asyncio.get_running_loop()

        async def receive_until_cut() -> Message:
            if request.started:
                return await receive()
            if self.cut_at is not None and loop.time() >= self.cut_at:
                request.told = True
                return DISCONNECT
            try:
                async with asyncio.timeout_at(self.cut_at) as waiting:
                    request.waiting = waiting
                    try:
                        return await receive()
                    finally:
                        request.waiting = None
            except TimeoutError:
                if not waiting.expired():
                    raise
                if request.started:
                    # The answer began as the cut came: it goes on, and so does listening.
                    return await receive()
                # The cut: the app hears the client leave.
                request.told = True
                return DISCONNECT

        def answer_begun() -> None:
            # An answer under way is left to finish: the server's own timeout bounds it.
            request.started = True
            self._running.discard(request)
            request.wait_until(None)

        self._running.add(request)
        try:
            await self.app(scope, receive_until_cut, watch_start(send, answer_begun))
        finally:
            self._running.discard(request)
        if request.told and not request.started:
            self.cut += 1
            await send_cut(send)
