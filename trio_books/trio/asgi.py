"""A fix between Quart-Trio and Hypercorn: the app's last ``send`` must not be cancelled.

Quart-Trio runs each request as two tasks in a nursery, one answering and one
listening for the client, and cancels the nursery as soon as either is done.
Hypercorn, handling the answer's last message, tells the listener "disconnect"
and then, in the same ``send`` call, restarts the connection's keep-alive timer
(or closes the connection after ``Connection: close``). The listener wakes
first and cancels the nursery, so that restart is cancelled half-way: idle
keep-alive connections then stay open until the client leaves, whatever
``keep_alive_timeout`` says. Shielding the app's ``send`` (for a bounded time)
lets Hypercorn finish its bookkeeping.

Only Hypercorn's own trio shell needs it (``SERVER_SHELL=hypercorn``): the
lean shell's keep-alive is a deadline moved without awaiting anything, and its
sends are not cancellation points, so the app is built without this wrapper.
``tests/test_lean_shell.py`` serves the app on both shells, with and without
it, and shows the idle connection left open only on Hypercorn's shell without it.
"""

from __future__ import annotations

import trio

from trio_books.api.asgi import ASGIApp, Message, Receive, Scope, Send


def shielded_send(app: ASGIApp, *, seconds: float) -> ASGIApp:
    """Wrap *app* so each ``send`` it makes runs shielded from cancellation, up to *seconds*."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_shielded(message: Message) -> None:
            with trio.CancelScope(shield=True, deadline=trio.current_time() + seconds):
                await send(message)

        await app(scope, receive, send_shielded)

    return wrapped
