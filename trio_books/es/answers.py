"""What Elasticsearch's answers and the transport's failures mean, as trio_books errors.

One place for the mapping (after httpx's ``map_httpcore_exceptions``): the
client wraps every call in an :class:`ErrorMap` and turns error statuses into
errors with :func:`error_from_response`. Public messages name no address; the
log-only detail does.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx
import orjson

from trio_books.errors import (
    AnswerTooLarge,
    CertificateRefused,
    ConnectionsExhausted,
    ElasticsearchError,
    ElasticsearchTimeout,
    ElasticsearchUnavailable,
    IndexMissing,
    TlsExpected,
    TrioBooksError,
)
from trio_books.es.connection import Node
from trio_books.transport.adapter import AnswerTooLarge as TransportAnswerTooLarge
from trio_books.transport.adapter import PoolOverloaded
from trio_books.transport.tls import CertificateProblem, SpeaksTLS


def translated(node: Node, error: httpx.TransportError) -> TrioBooksError:
    """The trio_books error for a transport error on *node* (after httpx's
    ``map_httpcore_exceptions``). Public messages name no address; the detail does.
    """
    if isinstance(error, PoolOverloaded):
        # Our own load, not the node's fault.
        return ConnectionsExhausted(
            "every connection to Elasticsearch is busy", detail=f"{node.url}: {error}"
        )
    if isinstance(error, httpx.PoolTimeout):
        return ConnectionsExhausted(
            "no free connection to Elasticsearch in time", detail=f"{node.url}: {error}"
        )
    if isinstance(error, CertificateProblem):
        return CertificateRefused(detail=f"{node.url}: {error}")
    if isinstance(error, SpeaksTLS):
        return TlsExpected(f"Elasticsearch is unreachable: {error}", detail=f"{node.url}: {error}")
    if isinstance(error, TransportAnswerTooLarge):
        return AnswerTooLarge(detail=f"{node.url}: {error}")
    if isinstance(error, httpx.TimeoutException):
        return ElasticsearchTimeout(
            f"Elasticsearch did not answer in time ({type(error).__name__})",
            detail=f"{node.url}: {error}",
        )
    return ElasticsearchUnavailable(
        f"Elasticsearch is unreachable ({type(error).__name__})", detail=f"{node.url}: {error}"
    )


class ErrorMap:
    """``with ErrorMap(node):`` turns the transport's errors into trio_books errors, in one place.

    A class rather than a generator-based context manager: the client enters one
    on every call, and this one costs two method calls, not a generator.
    """

    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if isinstance(error, httpx.TransportError):
            raise translated(self.node, error) from error


def before_sending(error: TrioBooksError) -> bool:
    """Whether the call failed before any byte of it reached the node (safe to send again)."""
    return isinstance(error.__cause__, (httpx.ConnectError, httpx.ConnectTimeout))


def decode_answer(status: int, content: bytes, allow_404: bool, index_must_exist: bool) -> Any:
    if status == 404 and allow_404:
        if index_must_exist and b"index_not_found_exception" in content:
            raise error_from_response(status, content)
        return None
    if status >= 400:
        raise error_from_response(status, content)
    return orjson.loads(content) if content else None


def error_from_response(status: int, content: bytes) -> ElasticsearchError:
    """Turn an Elasticsearch error answer into our error."""
    error_type, reason = "unknown", content[:200].decode(errors="replace")
    try:
        decoded = orjson.loads(content)
    except orjson.JSONDecodeError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
        error_type = str(decoded["error"].get("type", error_type))
        reason = str(decoded["error"].get("reason", reason))
        # "all shards failed" says little: the first root cause says why.
        causes = decoded["error"].get("root_cause")
        if isinstance(causes, list) and causes and isinstance(causes[0], dict):
            cause = causes[0]
            if cause.get("reason") and cause.get("reason") != reason:
                reason = f"{reason} ({cause.get('type')}: {str(cause['reason'])[:300]})"
    if error_type == "index_not_found_exception":
        return IndexMissing(f"the index does not exist yet: {reason}")
    return ElasticsearchError(f"Elasticsearch answered {status} ({error_type}): {reason}")
