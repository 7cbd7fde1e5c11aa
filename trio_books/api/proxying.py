"""Behind a reverse proxy: the client's own address, and the path prefix the service is mounted under.

**The client's address.** Behind a proxy every connection comes from the proxy,
so the access log would show the proxy for every request. With
``TRUSTED_PROXY_HOPS`` = *n* > 0, Hypercorn's ``ProxyFixMiddleware`` takes the
client from the *n*-th address from the right of ``Forwarded`` (or, without
one, ``X-Forwarded-For``, with ``X-Forwarded-Proto`` and ``X-Forwarded-Host``):
the entries a client wrote itself sit to the left of those the trusted proxies
appended, so a forged one is never taken. With 0 (the default) no header is
read at all: a service reached directly must not believe what its clients say
of themselves.

**The prefix.** ``ROOT_PATH=/books`` serves the service under ``/books``,
whether the proxy passes the path as it came (``/books/api/v1/search/``) or
strips the prefix first (``/api/v1/search/``). The request reaches Quart with
the prefix as the ASGI ``root_path``, which Quart removes before routing and
adds back to the URLs it builds (the ``/docs`` page's link to the document);
the service's own middleware reads :func:`app_path`. Every URL the service
sends is relative (``Location``, ``Link``, the search page's links), so all of
them stay under the prefix.
"""

from __future__ import annotations

from typing import Any

from hypercorn.middleware import ProxyFixMiddleware

from trio_books.api.asgi import ASGIApp, Receive, Scope, Send


def app_path(scope: Scope) -> str:
    """The request's path within the app: without the prefix it is mounted under."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path.removeprefix(root) if root and path.startswith(root) else path


class MountedAt:
    """Wrap *app*: every request's path carries *root_path*, which is also the scope's ``root_path``."""

    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root = root_path
        self.root_bytes = root_path.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            raw: bytes | None = scope.get("raw_path")
            if path == self.root:
                # The prefix alone is its root page, as "/" is without one.
                scope["path"], raw = path + "/", (raw + b"/" if raw else None)
            elif not path.startswith(self.root + "/"):
                # The proxy stripped the prefix: put it back, as the path sent to it had it.
                scope["path"], raw = self.root + path, (self.root_bytes + raw if raw else None)
            if raw is not None:
                scope["raw_path"] = raw
            scope["root_path"] = self.root
        await self.app(scope, receive, send)


def behind_proxies(app: ASGIApp, *, hops: int, root_path: str) -> ASGIApp:
    """*app* wrapped for the proxies the settings name (itself when there are none)."""
    wrapped = app
    if root_path:
        wrapped = MountedAt(wrapped, root_path)
    if hops > 0:
        # "modern": Forwarded when the request has one, else the X-Forwarded-* headers.
        fix: Any = ProxyFixMiddleware(wrapped, mode="modern", trusted_hops=hops)  # type: ignore[arg-type]
        wrapped = fix
    return wrapped
