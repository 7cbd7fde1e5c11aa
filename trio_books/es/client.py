"""The Elasticsearch calls trio_books makes, over one shared ``httpx.AsyncClient``.

This module is loop-neutral: httpx runs on Trio and on asyncio alike, so the
Trio build, the asyncio build and the loader all call Elasticsearch through it.
It owns no client: whoever serves owns the ``httpx.AsyncClient`` (one per app
lifetime) and hands it in. Failures become the errors of
:mod:`trio_books.errors`, each with its HTTP status.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import orjson

from trio_books.core.timeline import current_span
from trio_books.errors import (
    ElasticsearchError,
    ElasticsearchTimeout,
    ElasticsearchUnavailable,
    IndexMissing,
)

# "identity": httpx asks for gzip by default, and Elasticsearch then spends CPU
# compressing answers that we spend CPU decompressing, over loopback or a LAN
# where the bytes cost far less than the cycles.
JSON_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json",
    "accept-encoding": "identity",
}
NDJSON_HEADERS = {**JSON_HEADERS, "content-type": "application/x-ndjson"}


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
        urls: node URLs; requests rotate over them.
    """

    def __init__(self, http: httpx.AsyncClient, urls: Sequence[str]) -> None:
        if not urls:
            raise ValueError("at least one Elasticsearch URL is needed")
        self.http = http
        self.urls = list(urls)
        self._next_url = itertools.cycle(self.urls)
        # Calls under way now: a cancelled request must bring this back down.
        self.in_flight = 0

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
        time_limit: float | None = None,
    ) -> Any:
        """One call; returns the decoded JSON answer.

        Args:
            allow_404: return ``None`` for a 404 instead of raising.
            time_limit: seconds for this call instead of the client's timeout.

        Raises:
            ElasticsearchUnavailable: no connection.
            ElasticsearchTimeout: no answer in time.
            ElasticsearchError: an error status (``IndexMissing`` for a missing index).
        """
        if body is not None:
            content = orjson.dumps(body)
        response = await self._send(
            method, path, content=content, params=params, headers=headers, time_limit=time_limit
        )
        if response.status_code == 404 and allow_404:
            return None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content)
        return orjson.loads(response.content) if response.content else None

    async def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        time_limit: float | None = None,
    ) -> httpx.Response:
        """Send one call to the next node; transport failures become our errors."""
        node = next(self._next_url)
        if (span := current_span.get()) is not None:
            span.node = node
        self.in_flight += 1
        try:
            return await self.http.request(
                method,
                f"{node}{path}",
                content=content,
                params=params,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if time_limit is None else time_limit,
            )
        except httpx.TimeoutException as error:
            raise ElasticsearchTimeout(
                f"Elasticsearch did not answer in time ({type(error).__name__})"
            ) from error
        except httpx.TransportError as error:
            raise ElasticsearchUnavailable(
                f"Elasticsearch is unreachable ({type(error).__name__})"
            ) from error
        finally:
            self.in_flight -= 1

    async def search(
        self, index: str, body: Mapping[str, Any], *, time_limit: float | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "POST", f"/{index}/_search", body=body, time_limit=time_limit
        )
        return result

    async def get_source(self, index: str, doc_id: str) -> dict[str, Any] | None:
        response = await self._send(
            "GET", f"/{index}/_doc/{doc_id}", content=None, params=None, headers=JSON_HEADERS
        )
        # A missing book is a 404 with found=false; a missing index, a 404 with an error.
        if response.status_code >= 400 and response.status_code != 404:
            raise error_from_response(response.status_code, response.content)
        found = orjson.loads(response.content) if response.content else {}
        if isinstance(found.get("error"), dict):
            raise error_from_response(response.status_code, response.content)
        if not found.get("found"):
            return None
        source: dict[str, Any] = found["_source"]
        return source

    async def create_index(self, index: str, body: Mapping[str, Any]) -> None:
        await self.request("PUT", f"/{index}", body=body)

    async def index_exists(self, index: str) -> bool:
        try:
            response = await self.http.head(f"{self.urls[0]}/{index}")
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

        Unlike :meth:`request`, an error status is returned, not raised: the
        loader decides what a 429 or a 5xx means for each item.

        Raises:
            ElasticsearchUnavailable: no connection (refused or reset).
            ElasticsearchTimeout: no answer in time.
        """
        params = {"filter_path": filter_path} if filter_path else None
        response = await self._send(
            "POST", f"/{index}/_bulk", content=body, params=params, headers=NDJSON_HEADERS
        )
        return response.status_code, response.content

    async def cluster_health(self, time_limit: float | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "GET", "/_cluster/health", time_limit=time_limit
        )
        return result


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
