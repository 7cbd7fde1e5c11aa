"""``METRICS_PORT``: ``/metrics`` on a port of its own, off the public one.

The server listens on both ports; this ASGI middleware, outermost, tells them
apart by the port a request came in on (``scope["server"]``). On the metrics
port it answers ``GET /metrics`` itself and 404 to anything else, so nothing
of the API is reachable there; on the public port the request goes to the app,
which then has no ``/metrics`` route. A load balancer or proxy that forwards
only the public port thus never exposes the figures.

With ``serve --workers N``, the public port is shared (the parent binds it, the
workers take turns accepting), but a scrape of a shared port would read one
worker at random. So each worker binds its own metrics port,
``METRICS_PORT + index`` (0 to N-1): Prometheus scrapes every one of them and
sums over ``instance`` (see :func:`worker_metrics`). A worker the parent
replaces keeps its index, and so its port. Like the door shedder it needs no
event-loop primitive: both builds use it as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
from hypercorn.config import Config, Sockets

from trio_books.api.asgi import ASGIApp, Receive, Scope, Send
from trio_books.api.metrics import CONTENT_TYPE
from trio_books.api.proxying import app_path

if TYPE_CHECKING:
    from trio_books.api.metrics import ServiceMetrics
    from trio_books.settings import Settings

_NOT_FOUND = orjson.dumps({"error": "not_found", "message": "this port serves GET /metrics only"})
_NOT_ALLOWED = orjson.dumps(
    {"error": "method_not_allowed", "message": "this port serves GET /metrics only"}
)


class MetricsListener:
    """Wrap *app*: requests that came in on *port* get the metrics, never the app."""

    def __init__(self, app: ASGIApp, *, port: int, metrics: ServiceMetrics, path: str) -> None:
        self.app = app
        self.port = port
        self.metrics = metrics
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "http" or server is None or server[1] != self.port:
            await self.app(scope, receive, send)
            return
        if app_path(scope) != self.path:
            await _answer(send, 404, b"application/json", _NOT_FOUND)
        elif scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"application/json", _NOT_ALLOWED, (b"allow", b"GET, HEAD"))
        else:
            body = self.metrics.render() if scope["method"] == "GET" else b""
            await _answer(send, 200, CONTENT_TYPE.encode(), body)


async def _answer(
    send: Send, status: int, content_type: bytes, body: bytes, *extra: tuple[bytes, bytes]
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})


def metrics_bind(host: str, port: int) -> str:
    """Hypercorn's bind string for *host* and *port* (IPv6 hosts in brackets)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def worker_metrics(
    settings: Settings, config: Config, sockets: Sockets | None, index: int
) -> tuple[Settings, Sockets | None]:
    """Worker *index*'s settings and sockets: its own metrics port bound beside the shared ones.

    Unchanged when the metrics have no port of their own (they are then
    served on the shared public port, by whichever worker takes the scrape).
    """
    if not settings.metrics or settings.metrics_port is None or sockets is None:
        return settings, sockets
    port = settings.metrics_port + index
    host = config.bind[0].rsplit(":", 1)[0].strip("[]")
    own = Config()
    own.bind = [metrics_bind(host, port)]
    bound = own.create_sockets()
    return (
        settings.model_copy(update={"metrics_port": port}),
        Sockets(
            sockets.secure_sockets,
            [*sockets.insecure_sockets, *bound.insecure_sockets],
            sockets.quic_sockets,
        ),
    )
