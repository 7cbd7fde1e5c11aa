"""How many requests the app began and how many it answered in full.

An ASGI middleware around everything else, the door shedder included: a
request is *begun* when the server hands it to the app and *answered* when
the app's last body message has been sent. When serving ends, the two are
logged with the Elasticsearch client's closing line; equal counts say that
no request the server read was dropped, which is what the shutdown drill
checks (a client alone cannot tell a request the server never read from one
it read and lost). Like the door shedder it needs no event-loop primitive,
so both builds use it as it is.
"""

from __future__ import annotations

from trio_books.api.asgi import ASGIApp, Message, Receive, Scope, Send


class RequestTally:
    """Wrap *app*, counting HTTP requests begun and answered in full."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.begun = 0
        self.answered = 0

    def counters(self) -> dict[str, int]:
        return {"requests_begun": self.begun, "requests_answered": self.answered}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.begun += 1

        async def counting_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.answered += 1

        await self.app(scope, receive, counting_send)
