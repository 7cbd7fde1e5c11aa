"""The Elasticsearch calls trio_books makes, over one shared ``httpx.AsyncClient``.

This module is loop-neutral: httpx runs on Trio and on asyncio alike, so the
Trio build, the asyncio build and the loader all call Elasticsearch through it.
It owns no client: whoever serves owns the ``httpx.AsyncClient`` (one per app
lifetime) and hands it in. Failures become the errors of
:mod:`trio_books.errors`, each with its HTTP status.

Several nodes: each call goes to the next living node (round-robin, see
:mod:`trio_books.transport.nodes`). A node that fails (no connection, a
timeout, 429, 502, 503, 504) is marked dead for 1, 2, 4 … 30 s and the call is
retried on another node: at most ``retries`` times, never past the call's time
limit, and after a failure mid-answer only for calls that may be sent twice.
Each failed attempt shows on the request's timeline as ``<branch>#tryN``.
Node selection lives here rather than in the transport because it works the
same over any transport, the stock one included.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson

from trio_books.core.timeline import attempt_started, current_span, record_attempt
from trio_books.errors import (
    ConnectionsExhausted,
    ElasticsearchError,
    ElasticsearchTimeout,
    ElasticsearchUnavailable,
    IndexMissing,
    TrioBooksError,
)
from trio_books.transport.adapter import PoolOverloaded, RawTransport, idempotent, timeouts_from
from trio_books.transport.nodes import NodeSet

# "identity": httpx asks for gzip by default, and Elasticsearch then spends CPU
# compressing answers that we spend CPU decompressing, over loopback or a LAN
# where the bytes cost far less than the cycles.
JSON_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json",
    "accept-encoding": "identity",
}
NDJSON_HEADERS = {**JSON_HEADERS, "content-type": "application/x-ndjson"}
# Statuses that say "this node cannot serve now", not "your request is wrong".
RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEFAULT_RETRIES = 2

avoid_nodes: ContextVar[frozenset[str]] = ContextVar("trio_books_avoid_nodes", default=frozenset())
"""Nodes this task's calls should not use if another is left (a hedge avoids its rival's node)."""


def http_limits(max_connections: int) -> httpx.Limits:
    """Connection limits for the shared client.

    ``max_keepalive_connections`` equals ``max_connections``: a smaller value
    makes httpcore close and reopen connections under fan-out load.
    """
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=30.0,
    )


def http_timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds)


POOL_SHARD_SIZE = 8
"""Connections per pool of :class:`ShardedTransport`."""


def stock_transport(max_connections: int) -> httpx.AsyncHTTPTransport:
    """httpx's own transport as it ships, one httpcore pool: the benchmark's baseline."""
    return httpx.AsyncHTTPTransport(limits=http_limits(max_connections))


class ShardedTransport(httpx.AsyncBaseTransport):
    """Several small connection pools used in turn, instead of one large pool.

    httpcore's pool does work quadratic in its number of connections each time
    a request starts or ends (it re-scans every connection, polling idle
    sockets, and queued requests against all of them). Under a fan-out load of
    hundreds of concurrent requests that scan, not the network, became the
    service's main CPU cost; pools of :data:`POOL_SHARD_SIZE` keep it small.
    """

    def __init__(self, max_connections: int) -> None:
        shards = max(1, -(-max_connections // POOL_SHARD_SIZE))
        per_shard = -(-max_connections // shards)
        self.shards = [
            httpx.AsyncHTTPTransport(limits=http_limits(per_shard)) for _ in range(shards)
        ]
        self._next = itertools.cycle(self.shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._next).handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()


def open_http_client(
    *,
    timeout: float,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The one ``httpx.AsyncClient`` of an app's lifetime (use it with ``async with``)."""
    return httpx.AsyncClient(
        timeout=http_timeout(timeout),
        transport=transport or ShardedTransport(max_connections),
    )


class Elasticsearch:
    """Calls to an Elasticsearch cluster through a client someone else owns.

    Args:
        http: the shared client.
        urls: node URLs; requests rotate over the living ones.
        retries: how many times a failed call may be tried again on another node.
        raw: the client's transport, when it takes requests below httpx's
            objects (:class:`~trio_books.transport.adapter.RawTransport`): calls
            then skip the client's per-call work (URL merging, header merging,
            cookies, auth and redirect handling, request and response objects).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        urls: Sequence[str],
        *,
        retries: int = DEFAULT_RETRIES,
        raw: RawTransport | None = None,
    ) -> None:
        if not urls:
            raise ValueError("at least one Elasticsearch URL is needed")
        self.http = http
        self.urls = list(urls)
        self.nodes = NodeSet(self.urls)
        self.retries = retries
        self.raw = raw
        self._origins = {url: _origin(url) for url in self.urls}
        self._head_cache: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
        # Calls under way now: a cancelled request must bring this back down.
        self.in_flight = 0

    def _head(self, node: str, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
        """The request's headers as bytes, built once per node and header set."""
        key = (node, id(headers))
        found = self._head_cache.get(key)
        if found is None or len(self._head_cache) > 64:
            found = [(b"host", self._origins[node][2])]
            found += [(k.encode(), v.encode()) for k, v in headers.items()]
            found.append((b"user-agent", b"trio_books"))
            if headers is JSON_HEADERS or headers is NDJSON_HEADERS:
                # Module constants live for ever: their id cannot be reused.
                self._head_cache[key] = found
        return found

    async def _send(
        self,
        node: str,
        method: str,
        path: str,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        seconds: float | None,
        may_resend: bool,
    ) -> tuple[int, bytes]:
        """One attempt on *node*: (status, body)."""
        if self.raw is None:
            response = await self.http.request(
                method,
                f"{node}{path}",
                content=content,
                params=params,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if seconds is None else seconds,
            )
            return response.status_code, response.content
        host, port, _ = self._origins[node]
        head = self._head(node, headers)
        if content:
            head = [*head, (b"content-length", str(len(content)).encode())]
        target = f"{path}?{urlencode(params)}" if params else path
        answer = await self.raw.exchange(
            host,
            port,
            method.encode(),
            target.encode(),
            head,
            content or b"",
            timeouts_from(self.http.timeout, seconds),
            idempotent=may_resend,
        )
        return answer.status, answer.body

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] = JSON_HEADERS,
        allow_404: bool = False,
        index_must_exist: bool = False,
        time_limit: float | None = None,
    ) -> Any:
        """One call; returns the decoded JSON answer.

        Args:
            allow_404: return ``None`` for a 404 instead of raising.
            index_must_exist: with *allow_404*, a 404 because the index is
                missing still raises ``IndexMissing``.
            time_limit: seconds for this call (retries included) instead of the
                client's timeout.

        Raises:
            ElasticsearchUnavailable: no connection (``ConnectionsExhausted`` when every
                node's pool is full).
            ElasticsearchTimeout: no answer in time.
            ElasticsearchError: an error status (``IndexMissing`` for a missing index).
        """
        if body is not None:
            content = orjson.dumps(body)
        deadline = None if time_limit is None else time.monotonic() + time_limit
        may_resend = idempotent(method, path.encode())
        span = current_span.get()
        tried: set[str] = set(avoid_nodes.get())
        failure: TrioBooksError | None = None
        for attempt in range(1, self.retries + 2):
            now = time.monotonic()
            node = self.nodes.pick(now, exclude=tried)
            if node is None and attempt == 1:
                node = self.nodes.pick(now)  # only avoided nodes exist: use one anyway
            if node is None or (deadline is not None and deadline <= now):
                break
            tried.add(node)
            if span is not None:
                span.node = node
            started = attempt_started()
            seconds = None if deadline is None else deadline - now
            self.in_flight += 1
            try:
                status, answer = await self._send(
                    node, method, path, content, params, headers, seconds, may_resend
                )
            except PoolOverloaded as error:
                # Our own load, not the node's fault: try another node, mark none dead.
                failure = ConnectionsExhausted(
                    f"every connection to Elasticsearch is busy ({error})"
                )
            except httpx.PoolTimeout as error:
                failure = ConnectionsExhausted(
                    f"no free connection to Elasticsearch in time ({error})"
                )
            except httpx.TimeoutException as error:
                self.nodes.mark_dead(node, time.monotonic())
                failure = ElasticsearchTimeout(
                    f"Elasticsearch did not answer in time ({type(error).__name__})"
                )
                if not may_resend and not isinstance(error, httpx.ConnectTimeout):
                    raise failure from error
            except httpx.TransportError as error:
                self.nodes.mark_dead(node, time.monotonic())
                failure = ElasticsearchUnavailable(
                    f"Elasticsearch is unreachable ({type(error).__name__})"
                )
                if not may_resend and not isinstance(error, httpx.ConnectError):
                    raise failure from error
            else:
                if status not in RETRY_STATUSES:
                    self.nodes.mark_alive(node)
                    return _decode(status, answer, allow_404, index_must_exist)
                self.nodes.mark_dead(node, time.monotonic())
                failure = error_from_response(status, answer)
                if not may_resend:
                    raise failure
            finally:
                self.in_flight -= 1
            record_attempt(
                f"try{attempt}", started, node=node, outcome="error", detail=failure.message
            )
        raise failure or ElasticsearchUnavailable("no Elasticsearch node left to try in time")

    async def search(
        self, index: str, body: Mapping[str, Any], *, time_limit: float | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST", f"/{index}/_search", body=body, time_limit=time_limit
        )
        return result

    async def get_source(self, index: str, doc_id: str) -> dict[str, Any] | None:
        # A missing book is a 404 with found=false; a missing index raises.
        found = await self.request(
            "GET", f"/{index}/_doc/{doc_id}", allow_404=True, index_must_exist=True
        )
        if not isinstance(found, dict) or not found.get("found"):
            return None
        source: dict[str, Any] = found["_source"]
        return source

    async def create_index(self, index: str, body: Mapping[str, Any]) -> None:
        await self.request("PUT", f"/{index}", body=body)

    async def index_exists(self, index: str) -> bool:
        try:
            node = self.nodes.pick(time.monotonic()) or self.urls[0]
            response = await self.http.head(f"{node}/{index}")
        except httpx.TransportError as error:
            raise ElasticsearchUnavailable(
                f"Elasticsearch is unreachable ({type(error).__name__})"
            ) from error
        return response.status_code == 200

    async def delete_index(self, index: str) -> None:
        await self.request("DELETE", f"/{index}", allow_404=True)

    async def refresh(self, index: str) -> None:
        await self.request("POST", f"/{index}/_refresh")

    async def bulk(self, body: bytes, *, refresh: bool = False) -> dict[str, Any]:
        params = {"refresh": "true"} if refresh else None
        result: dict[str, Any] = await self.request(
            "POST", "/_bulk", content=body, params=params, headers=NDJSON_HEADERS
        )
        return result

    async def post_bulk(
        self, index: str, body: bytes, *, filter_path: str | None = None
    ) -> tuple[int, bytes]:
        """``POST /<index>/_bulk``; the HTTP status and body as they came.

        Unlike :meth:`request`, an error status is returned, not raised, and
        nothing is retried here: the loader decides what a 429 or a 5xx means
        for each item, and resends whole chunks itself.

        Raises:
            ElasticsearchUnavailable: no connection (refused or reset).
            ElasticsearchTimeout: no answer in time.
        """
        node = self.nodes.pick(time.monotonic()) or self.urls[0]
        params = {"filter_path": filter_path} if filter_path else None
        self.in_flight += 1
        try:
            return await self._send(
                node, "POST", f"/{index}/_bulk", body, params, NDJSON_HEADERS, None, False
            )
        except httpx.TimeoutException as error:
            self.nodes.mark_dead(node, time.monotonic())
            raise ElasticsearchTimeout(
                f"Elasticsearch did not answer in time ({type(error).__name__})"
            ) from error
        except httpx.TransportError as error:
            self.nodes.mark_dead(node, time.monotonic())
            raise ElasticsearchUnavailable(
                f"Elasticsearch is unreachable ({type(error).__name__})"
            ) from error
        finally:
            self.in_flight -= 1

    async def cluster_health(self, time_limit: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "GET", "/_cluster/health", time_limit=time_limit
        )
        return result


def _origin(url: str) -> tuple[str, int, bytes]:
    """(host, port, Host header) of a node URL."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return host, port, parts.netloc.encode()


def _decode(status: int, content: bytes, allow_404: bool, index_must_exist: bool) -> Any:
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
