"""What both shells share with httpx: errors, timeouts, idempotency, building the response.

The shells (:mod:`trio_books.trio.transport`, :mod:`trio_books.asyncio.transport`)
are ``httpx.AsyncBaseTransport`` subclasses; this module turns an
``httpx.Request`` into what the sans-IO core takes and the core's
:class:`~trio_books.transport.http11.Answer` back into an ``httpx.Response``.
It imports no event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import httpx

from trio_books.transport.http11 import Answer

IDEMPOTENT = "trio_books.idempotent"
"""Request extension: ``True``/``False`` says whether the request may be sent twice."""

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Elasticsearch's read-only APIs that take their body by POST: sending one
# twice changes nothing.
_READ_ONLY_ENDPOINTS = (b"/_search", b"/_count", b"/_msearch", b"/_mget", b"/_refresh")
_HTTP11 = {"http_version": b"HTTP/1.1"}


class PoolOverloaded(httpx.TransportError):
    """Every slot of the node is taken and its wait queue is full: shed, don't queue."""


class AnswerTooLarge(httpx.RemoteProtocolError):
    """The node's answer was larger than the transport's cap; the connection was closed."""


class Origin(NamedTuple):
    """Where a connection goes: the pool key (a scheme is part of it: https never shares with http)."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class Timeouts:
    """httpx's four timeouts for one request, in seconds (``None``: no limit)."""

    connect: float | None
    read: float | None
    write: float | None
    pool: float | None


class RawTransport(Protocol):
    """A transport that also takes a request below httpx's objects (both shells do).

    httpx's request and response objects cost about as much as the transport
    itself: the Elasticsearch client, which sends a handful of request shapes
    over and over, builds their bytes once per node and calls this directly.
    """

    async def exchange(
        self,
        origin: Origin,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeouts: Timeouts,
        *,
        idempotent: bool,
    ) -> Answer: ...


def timeouts_from(timeout: httpx.Timeout, seconds: float | None = None) -> Timeouts:
    """The four timeouts of *timeout*, or all *seconds* when given (a call's own limit)."""
    if seconds is not None:
        return Timeouts(seconds, seconds, seconds, seconds)
    return Timeouts(timeout.connect, timeout.read, timeout.write, timeout.pool)


def timeouts_of(request: httpx.Request) -> Timeouts:
    found = request.extensions.get("timeout", {})
    return Timeouts(found.get("connect"), found.get("read"), found.get("write"), found.get("pool"))


def idempotent(method: str, path: bytes) -> bool:
    """The idempotent methods, and POST to Elasticsearch's read-only endpoints
    (``_search``, ``_count``, ``_msearch``, ``_mget``, ``_refresh``)."""
    if method in _IDEMPOTENT_METHODS:
        return True
    return method == "POST" and path.partition(b"?")[0].endswith(_READ_ONLY_ENDPOINTS)


def is_idempotent(request: httpx.Request) -> bool:
    """May *request* be sent again after a connection failed under it?

    The ``trio_books.idempotent`` extension decides when present; otherwise :func:`idempotent`.
    """
    said = request.extensions.get(IDEMPOTENT)
    if said is not None:
        return bool(said)
    return idempotent(request.method, request.url.raw_path)


def origin_of(request: httpx.Request) -> Origin:
    """The node this request goes to."""
    url = request.url
    if url.scheme == "https":
        return Origin("https", url.host, url.port or 443)
    if url.scheme == "http":
        return Origin("http", url.host, url.port or 80)
    raise httpx.UnsupportedProtocol(f"this transport speaks http and https, not {url.scheme}")


def to_response(answer: Answer, request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        answer.status,
        headers=answer.headers,
        content=answer.body,
        extensions={**_HTTP11, "reason_phrase": answer.reason},
        request=request,
    )
