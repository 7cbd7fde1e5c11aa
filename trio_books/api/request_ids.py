"""Each request's id, set where the request enters the service, so every line logged for it carries it.

Quart runs a request's handler in a task of its own, a child of the task the
server started for the request: an id set in a ``before_request`` hook is seen
by the handler and the fan-out's tasks (children inherit it), but not by the
server's own task, whose lines (Hypercorn's "Error in ASGI Framework", the
door's shed log) then went without it. Set here, in the outermost layer, it is
in the server's task and every task below.
"""

from __future__ import annotations

from trio_books.api.asgi import ASGIApp, Receive, Scope, Send
from trio_books.core.trace_context import current_trace, incoming_context
from trio_books.logs import REQUEST_ID_HEADER, current_request_id, request_id

_HEADER = REQUEST_ID_HEADER.lower().encode()
_TRACEPARENT = b"traceparent"
_TRACESTATE = b"tracestate"


class RequestIds:
    """Wrap *app*: each HTTP request gets its id (the client's if plain, else a new one), and
    its W3C trace context (under the caller's ``traceparent`` if valid, else a new trace)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = parent = state = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                incoming = value.decode("latin-1")
            elif name == _TRACEPARENT:
                parent = value.decode("latin-1")
            elif name == _TRACESTATE:
                state = value.decode("latin-1")
        # Not reset afterwards: the server runs each request in a task of its own
        # (a copy of the context), and its line for a fault below comes after
        # this call has returned (Hypercorn's "Error in ASGI Framework").
        current_request_id.set(request_id(incoming))
        # The caller's W3C trace, or a new one: every line logged for the request names it.
        current_trace.set(incoming_context(parent, state))
        await self.app(scope, receive, send)
