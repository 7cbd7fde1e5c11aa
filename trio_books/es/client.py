"""The Elasticsearch calls trio_books makes, over one shared ``httpx.AsyncClient``.

This module is loop-neutral: httpx runs on Trio and on asyncio alike, so the
Trio build, the asyncio build and the loader all call Elasticsearch through it.
Every caller opens its client with :func:`~trio_books.es.opening.open_elasticsearch` from the one
:class:`~trio_books.es.connection.ConnectionConfig` of its lifetime: nodes
(``https://`` ones over TLS), credentials, compression and caps come from
there, and nothing else reads the URLs. Failures become the errors of
:mod:`trio_books.errors`, each with its HTTP status; 401 and 403 are their own
error, neither retried nor marking a node dead.

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

import gzip
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from trio_books.core.timeline import attempt_started, current_span, record_attempt
from trio_books.core.trace_context import current_trace
from trio_books.errors import (
    AnswerTooLarge,
    CertificateRefused,
    ConnectionsExhausted,
    CredentialsRefused,
    ElasticsearchError,
    ElasticsearchTimeout,
    ElasticsearchUnavailable,
    TrioBooksError,
)
from trio_books.es.answers import ErrorMap, before_sending, decode_answer, error_from_response
from trio_books.es.connection import ConnectionConfig, Node, plain_config
from trio_books.es.engines import EngineInfo, identify
from trio_books.logs import current_request_id
from trio_books.transport.adapter import (
    Origin,
    RawTransport,
    idempotent,
    timeouts_from,
)
from trio_books.transport.http11 import decoded_body
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
# Statuses that say "not with these credentials": the same on every node.
AUTH_STATUSES = frozenset({401, 403})

avoid_nodes: ContextVar[frozenset[str]] = ContextVar("trio_books_avoid_nodes", default=frozenset())
"""Nodes this task's calls should not use if another is left (a hedge avoids its rival's node)."""


class _NodeCalls:
    """What is built once per node: where to connect, and the headers every call carries."""

    __slots__ = ("errors", "headers", "node", "origin")

    def __init__(self, node: Node, config: ConnectionConfig) -> None:
        self.node = node
        self.errors = ErrorMap(node)
        self.origin = Origin(node.scheme, node.host, node.port)
        head = [(b"host", node.host_header), (b"user-agent", config.user_agent.encode())]
        if config.credentials is not None:
            value = config.credentials.authorization.get_secret_value()
            head.append((b"authorization", value.encode("latin-1")))
        self.headers = head


class Elasticsearch:
    """Calls to an Elasticsearch cluster through a client someone else owns.

    Args:
        http: the shared client.
        config: the connection configuration (or, for plain nodes, their URLs).
        retries: how many times a failed call may be tried again on another
            node (default: the configuration's).
        raw: the client's transport, when it takes requests below httpx's
            objects (:class:`~trio_books.transport.adapter.RawTransport`): calls
            then skip the client's per-call work (URL merging, header merging,
            cookies, auth and redirect handling, request and response objects).
        clock: the event loop's clock, for deadlines and node backoff (tests
            on Trio's ``autojump_clock`` drive failover timing through it).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: ConnectionConfig | Sequence[str],
        *,
        retries: int | None = None,
        raw: RawTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(config, ConnectionConfig):
            if not config:
                raise ValueError("at least one Elasticsearch URL is needed")
            config = plain_config(config)
        self.http = http
        self.config = config
        self.urls = config.urls
        self.nodes = NodeSet(self.urls)
        self.retries = config.retries if retries is None else retries
        self.raw = raw
        self.clock = clock
        self._calls = {node.url: _NodeCalls(node, config) for node in config.nodes}
        # The transport under *http*, when the opener knows it (pool statistics).
        self.transport: httpx.AsyncBaseTransport | None = None
        self._head_cache: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
        # Calls under way now: a cancelled request must bring this back down.
        self.in_flight = 0

    def _head(self, node: str, headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
        """The request's headers as bytes, built once per node and header set."""
        key = (node, id(headers))
        found = self._head_cache.get(key)
        if found is None or len(self._head_cache) > 64:
            found = [*self._calls[node].headers]
            found += [(k.encode(), v.encode()) for k, v in headers.items()]
            if self.config.http_compress:
                found = [(k, b"gzip") if k == b"accept-encoding" else (k, v) for k, v in found]
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
        """One attempt on *node*: (status, body), the body decoded if it came gzipped."""
        calls = self._calls[node]
        head = self._head(node, headers)
        extra: list[tuple[bytes, bytes]] = []
        if (request_id := current_request_id.get()) is not None:
            # Elasticsearch logs it with slow queries and tasks: back to our request.
            extra.append((b"x-opaque-id", request_id.encode("ascii", "replace")))
        if (trace := current_trace.get()) is not None:
            # The task's span as the parent: Elasticsearch's own spans hang under it.
            span = current_span.get()
            header = trace.traceparent(span.span_id if span is not None else None)
            extra.append((b"traceparent", header.encode()))
            if trace.state is not None:
                extra.append((b"tracestate", trace.state.encode()))
        if content and self.config.http_compress:
            content = gzip.compress(content, compresslevel=1)
            extra.append((b"content-encoding", b"gzip"))
        if content:
            extra.append((b"content-length", str(len(content)).encode()))
        target = f"{path}?{urlencode(params)}" if params else path
        if self.raw is None:
            response = await self.http.request(
                method,
                calls.node.url + target,
                content=content,
                headers=[*head[1:], *extra],
                timeout=httpx.USE_CLIENT_DEFAULT if seconds is None else seconds,
            )
            return response.status_code, response.content
        answer = await self.raw.exchange(
            calls.origin,
            method.encode(),
            calls.node.target(target),
            [*head, *extra] if extra else head,
            content or b"",
            timeouts_from(self.http.timeout, seconds),
            idempotent=may_resend,
        )
        return answer.status, decoded_body(answer, self.config.max_response_bytes)

    def _refused(self, node: str, status: int) -> CredentialsRefused:
        credentials = self.config.credentials
        who = credentials.describe() if credentials is not None else "no credentials"
        verdict = "not allowed" if status == 403 else "credentials refused"
        return CredentialsRefused(status, detail=f"{node} answered {status} ({verdict}) to {who}")

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
                node's pool is full, ``CredentialsRefused`` for a 401 or 403,
                ``CertificateRefused`` for a certificate not accepted).
            ElasticsearchTimeout: no answer in time.
            ElasticsearchError: an error status (``IndexMissing`` for a missing index).
        """
        if body is not None:
            content = orjson.dumps(body)
        clock = self.clock
        deadline = None if time_limit is None else clock() + time_limit
        may_resend = idempotent(method, path.encode())
        span = current_span.get()
        tried: set[str] = set(avoid_nodes.get())
        failure: TrioBooksError | None = None
        for attempt in range(1, self.retries + 2):
            now = clock()
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
                with self._calls[node].errors:
                    status, answer = await self._send(
                        node, method, path, content, params, headers, seconds, may_resend
                    )
            except (CredentialsRefused, CertificateRefused, AnswerTooLarge):
                # The same on every node, and no node's fault: neither dead nor retried.
                raise
            except ConnectionsExhausted as error:
                # Our own load: try another node, mark none dead.
                failure = error
            except (ElasticsearchTimeout, ElasticsearchUnavailable) as error:
                self.nodes.mark_dead(node, clock())
                failure = error
                if not may_resend and not before_sending(error):
                    raise
            else:
                if status in AUTH_STATUSES:
                    raise self._refused(node, status)
                if status not in RETRY_STATUSES:
                    self.nodes.mark_alive(node)
                    return decode_answer(status, answer, allow_404, index_must_exist)
                self.nodes.mark_dead(node, clock())
                failure = error_from_response(status, answer)
                if not may_resend:
                    raise failure
            finally:
                self.in_flight -= 1
            record_attempt(
                f"try{attempt}",
                started,
                node=node,
                outcome="error",
                detail=failure.message,
                code=failure.code,
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

    async def index_exists(self, index: str, *, time_limit: float | None = None) -> bool:
        node = self.nodes.pick(self.clock()) or self.urls[0]
        with self._calls[node].errors:
            status, _ = await self._send(
                node, "HEAD", f"/{index}", None, None, JSON_HEADERS, time_limit, True
            )
        if status in AUTH_STATUSES:
            raise self._refused(node, status)
        return status == 200

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
        self,
        index: str,
        body: bytes,
        *,
        filter_path: str | None = None,
        require_alias: bool = False,
    ) -> tuple[int, bytes]:
        """``POST /<index>/_bulk``; the HTTP status and body as they came.

        Unlike :meth:`request`, an error status is returned, not raised, and
        nothing is retried here: the loader decides what a 429 or a 5xx means
        for each item, and resends whole chunks itself.

        Args:
            require_alias: *index* must be an alias: when it is not (any more),
                Elasticsearch refuses each item (404) instead of creating an index.

        Raises:
            ElasticsearchUnavailable: no connection (refused or reset).
            ElasticsearchTimeout: no answer in time.
        """
        node = self.nodes.pick(self.clock()) or self.urls[0]
        params: dict[str, str] = {"filter_path": filter_path} if filter_path else {}
        if require_alias:
            params["require_alias"] = "true"
        self.in_flight += 1
        try:
            with self._calls[node].errors:
                status, answer = await self._send(
                    node, "POST", f"/{index}/_bulk", body, params, NDJSON_HEADERS, None, False
                )
        except (ElasticsearchTimeout, ElasticsearchUnavailable) as error:
            if not isinstance(
                error, (CredentialsRefused, CertificateRefused, ConnectionsExhausted)
            ):
                self.nodes.mark_dead(node, self.clock())
            raise
        finally:
            self.in_flight -= 1
        if status in AUTH_STATUSES:
            raise self._refused(node, status)
        return status, answer

    async def cluster_health(
        self, time_limit: float | None = None, *, local: bool = False
    ) -> dict[str, Any]:
        """The cluster's health; *local*: as the node asked knows it, not from the master."""
        result: dict[str, Any] = await self.request(
            "GET",
            "/_cluster/health",
            params={"local": "true"} if local else None,
            time_limit=time_limit,
        )
        return result

    async def engine_info(self, time_limit: float | None = None) -> EngineInfo | None:
        """Which engine and version answer (``None``: the answers name no version).

        ``GET /`` first, which names the engine and version where it exists;
        ``_nodes`` only when it did not (Elasticsearch's test distribution has
        no such route; a user without the right to it gets a 401 or 403 there).

        Raises:
            TrioBooksError: what :meth:`request` raises for ``_nodes``.
            ValueError: an answer that is not JSON.
        """
        deadline = None if time_limit is None else self.clock() + time_limit
        try:
            root = await self.request("GET", "/", time_limit=time_limit)
        except (ElasticsearchError, CredentialsRefused, ValueError):
            root = None
        found = identify(root, None)
        if found is not None:
            return found
        nodes = await self.request(
            "GET",
            "/_nodes",
            params={"filter_path": "nodes.*.version"},
            time_limit=None if deadline is None else max(0.0, deadline - self.clock()),
        )
        return identify(root, nodes)
