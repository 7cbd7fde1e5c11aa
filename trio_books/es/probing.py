"""What answers on a local node's port: nothing, Elasticsearch (or OpenSearch), or something else.

The runner's own look at a node, before and after it starts it. A secure
node is reached over TLS only (verified against its own CA, as the admin
user from its ``secure.json``): the runner never sends it a plaintext request.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

import httpx
import trio

from trio_books.es import security
from trio_books.es.engines import EngineInfo, identify

if TYPE_CHECKING:
    from trio_books.es.layout import NodeLayout


class PortState(Enum):
    FREE = "free"
    ELASTICSEARCH = "elasticsearch"
    OTHER = "other"


def _client(http_timeout: float, secure: security.SecureInfo | None = None) -> httpx.AsyncClient:
    """A plain client, or for a secure node one that trusts its CA alone and logs in as admin."""
    if secure is None:
        return httpx.AsyncClient(timeout=http_timeout)
    admin = secure.admin
    return httpx.AsyncClient(
        timeout=http_timeout, verify=secure.ssl_context(), auth=(admin.username, admin.password)
    )


def looks_like_elasticsearch(status: int, body: object) -> bool:
    """Whether an answer to ``GET /_cluster/health`` comes from Elasticsearch.

    A secured node that refuses our credentials still counts: its 401 carries
    Elasticsearch's own ``security_exception``.
    """
    if not isinstance(body, dict):
        return False
    if status == 200:
        return "cluster_name" in body and "status" in body
    error = body.get("error")
    return status == 401 and isinstance(error, dict) and error.get("type") == "security_exception"


async def _port_open(url: str, http_timeout: float) -> bool:
    address = httpx.URL(url)
    with trio.move_on_after(http_timeout):
        try:
            stream = await trio.open_tcp_stream(address.host, address.port or 443)
        except OSError:
            return False
        await stream.aclose()
    return True


async def probe(
    url: str, http_timeout: float = 2.0, *, secure: security.SecureInfo | None = None
) -> PortState:
    """What answers at *url*: nothing, Elasticsearch, or something else.

    An ``https`` URL is probed over TLS only, verified with *secure*'s CA; without
    *secure* there is nothing to verify it with, so an open port reads as OTHER.
    """
    tls = url.startswith("https:")
    if tls:
        # A bare TCP connect first: httpx reports a refused connection and a
        # failed TLS handshake alike (ConnectError).
        if not await _port_open(url, http_timeout):
            return PortState.FREE
        if secure is None:
            return PortState.OTHER
    try:
        async with _client(http_timeout, secure) as client:
            response = await client.get(f"{url}/_cluster/health")
    except httpx.ConnectError:
        return PortState.OTHER if tls else PortState.FREE
    except httpx.HTTPError:
        return PortState.OTHER
    try:
        body = response.json()
    except ValueError:
        return PortState.OTHER
    # Over plain HTTP only a 200 counts, as it always has.
    if looks_like_elasticsearch(response.status_code, body) and (
        tls or response.status_code == 200
    ):
        return PortState.ELASTICSEARCH
    return PortState.OTHER


async def probe_node(layout: NodeLayout, http_timeout: float = 2.0) -> PortState:
    """:func:`probe` of the node's URL, over TLS with its ``secure.json`` when it is secure."""
    return await probe(layout.url, http_timeout, secure=node_access(layout))


def node_access(layout: NodeLayout) -> security.SecureInfo | None:
    """How to reach a secure layout's node (``None`` for a plain one, or one not provisioned)."""
    return security.read_secure_info(layout) if layout.secure else None


async def cluster_health(
    url: str, http_timeout: float = 2.0, *, secure: security.SecureInfo | None = None
) -> dict[str, object]:
    async with _client(http_timeout, secure) as client:
        response = await client.get(f"{url}/_cluster/health")
        response.raise_for_status()
        body: dict[str, object] = response.json()
        return body


async def server_info(
    url: str, http_timeout: float = 2.0, *, secure: security.SecureInfo | None = None
) -> EngineInfo | None:
    """Which engine and version answer at *url* (``None``: its answers name no version).

    ``GET /`` names OpenSearch; Elasticsearch's test distribution has no such
    route, so the version comes from ``_nodes`` then (see :func:`identify`).
    """
    async with _client(http_timeout, secure) as client:
        response = await client.get(f"{url}/")
        root = response.json() if response.status_code == 200 else None
        response = await client.get(
            f"{url}/_nodes/_local", params={"filter_path": "nodes.*.version"}
        )
        response.raise_for_status()
        return identify(root, response.json())
