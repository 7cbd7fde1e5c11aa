"""Answering, not dropping, a request that would outlast the graceful timeout.

After a stop signal the server lets in-flight requests finish for up to
``GRACEFUL_TIMEOUT`` seconds, then cancels what is left, and the client hears a
bare close or an empty 500, depending on the shell. So the app cuts such a
request itself a little earlier and answers it 503 ``shutting_down`` with
``Retry-After``: the client (or its load balancer) knows to ask again
elsewhere, and the request counts as answered. An answer already begun is
left to finish. How a request is cut depends on the event loop and on how its
Quart runs a request, so each build has a mirror middleware
(:mod:`trio_books.trio.graceful`, :mod:`trio_books.asyncio.graceful`); what
they share, the moment of the cut and the answer's bytes, is here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from trio_books.api.asgi import ASGIApp, Headers, Message, Receive, Scope, Send, error_answer
from trio_books.errors import ShuttingDown
from trio_books.logs import current_request_id

GRACEFUL_KEY = "trio_books.graceful"
# The cut comes this long before the server's own (at most a quarter of the
# timeout), which leaves time to send the 503 before the server cancels.
CUT_MARGIN = 0.5
# A client cut at shutdown may ask again at once: another instance serves it.
RETRY_AFTER = 1


class GracefulCut(Protocol):
    """Either build's middleware: an ASGI app that the drain can tell of the stop signal."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    def drain(self) -> None:
        """The stop signal came: cut what is still running when the timeout is near."""


MakeGracefulCut = Callable[[ASGIApp, float], GracefulCut]


def cut_after(graceful_timeout: float) -> float:
    """Seconds after the stop signal at which the app cuts what is still running."""
    return max(0.0, graceful_timeout - min(CUT_MARGIN, graceful_timeout / 4))


def cut_answer() -> tuple[Headers, bytes]:
    """The 503 ``shutting_down`` answer's headers and body."""
    error = ShuttingDown("the service is shutting down; ask again")
    return error_answer(error, ("retry-after", str(RETRY_AFTER)), ("connection", "close"))


def watch_start(send: Send, on_start: Callable[[], None]) -> Send:
    """*send*, calling *on_start* as the answer's head goes out (from then on, no cut)."""

    async def watching(message: Message) -> None:
        if message["type"] == "http.response.start":
            on_start()
        await send(message)

    return watching


async def send_cut(send: Send) -> None:
    headers, body = cut_answer()
    if (rid := current_request_id.get()) is not None:
        # As on every answer: set where the request came in (api.request_ids).
        headers = [*headers, (b"x-request-id", rid.encode())]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})
