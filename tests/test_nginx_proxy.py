"""The API key proxy itself (``nginx_proxy.py``), against the test session's real Elasticsearch.

Before the service's ``ApiKey`` support is tested through it, these tests show
that the proxy refuses what it should, forwards what it should unchanged, keeps
credentials out of its log and verifies a TLS upstream. Each test runs its own
nginx on a free loopback port, stopped by cancelling its task.
"""

from __future__ import annotations

import base64
import functools
import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
import trustme
from nginx_proxy import UNAUTHORIZED_BODY, ProxyInfo, serve_api_key_proxy

pytestmark = [pytest.mark.elasticsearch, pytest.mark.needs("nginx")]


@pytest.fixture
async def proxy(es_url: str, tmp_path: Path) -> AsyncIterator[ProxyInfo]:
    """nginx with one API key in front of the test session's Elasticsearch."""
    async with trio.open_nursery() as nursery:
        info: ProxyInfo = await nursery.start(serve_api_key_proxy, es_url, tmp_path / "proxy")
        yield info
        nursery.cancel_scope.cancel()


def client_for(info: ProxyInfo, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=info.ca_certs), headers=headers, timeout=30
    )


def api_key_header(info: ProxyInfo) -> dict[str, str]:
    return {"Authorization": f"ApiKey {info.api_key}"}


def log_lines(info: ProxyInfo) -> list[str]:
    return info.access_log.read_text().splitlines()


async def logged(info: ProxyInfo, count: int) -> list[str]:
    """The access log once it holds ``count`` lines.

    nginx writes a request's line in its log phase, after the answer has gone out, so
    the client can read the answer before the line is there.
    """
    with trio.move_on_after(10):
        while len(lines := log_lines(info)) < count:
            await trio.sleep(0.02)
    return lines


async def test_refuses_a_request_without_a_key(proxy: ProxyInfo) -> None:
    async with client_for(proxy) as http:
        response = await http.get(f"{proxy.url}/_cluster/health")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.text == UNAUTHORIZED_BODY
    assert response.json()["error"]["type"] == "security_exception"
    assert "upstream_status=- " in (await logged(proxy, 1))[-1]


@pytest.mark.parametrize(
    "authorization",
    [
        "ApiKey d3Jvbmc6a2V5",  # someone else's key
        "Basic ZWxhc3RpYzpjaGFuZ2VtZQ==",
        "ApiKey",
        "<key in another case>",  # base64 is case-sensitive; so must the comparison be
        "<key with a suffix>",
        "<key without the scheme>",
    ],
)
async def test_refuses_a_wrong_key(proxy: ProxyInfo, authorization: str) -> None:
    authorization = {
        "<key in another case>": f"ApiKey {proxy.api_key.swapcase()}",
        "<key with a suffix>": f"ApiKey {proxy.api_key}x",
        "<key without the scheme>": proxy.api_key,
    }.get(authorization, authorization)
    async with client_for(proxy, Authorization=authorization) as http:
        response = await http.get(f"{proxy.url}/_cluster/health")
    assert response.status_code == 401
    assert response.json()["status"] == 401
    assert "upstream_status=- " in (await logged(proxy, 1))[-1]


async def test_the_right_key_reaches_elasticsearch(proxy: ProxyInfo, es_url: str) -> None:
    async with httpx.AsyncClient(timeout=30) as direct:
        expected = (await direct.get(f"{es_url}/_cluster/health")).json()
    headers = api_key_header(proxy) | {"X-Opaque-Id": "proxy-test-7", "User-Agent": "books/1.0"}
    async with client_for(proxy, **headers) as http:
        response = await http.get(f"{proxy.url}/_cluster/health")
        # A second request on the same client: keep-alive to the proxy holds.
        again = await http.get(f"{proxy.url}/_cluster/health", params={"filter_path": "status"})
    assert response.status_code == 200
    assert response.json()["cluster_name"] == expected["cluster_name"]
    assert again.json() == {"status": expected["status"]}

    first, second = (await logged(proxy, 2))[-2:]
    assert '"GET /es/_cluster/health HTTP/1.1" 200 ' in first
    assert 'opaque_id="proxy-test-7"' in first
    assert 'user_agent="books/1.0"' in first
    assert "upstream_status=200 " in first
    connection = re.search(r"connection=(\d+):1$", first)
    assert connection is not None
    assert second.endswith(f"connection={connection[1]}:2")
    log = proxy.access_log.read_text()
    assert proxy.api_key not in log
    assert base64.b64decode(proxy.api_key).decode().split(":")[1] not in log


async def test_the_prefix_is_stripped_and_the_path_passed_as_written(
    proxy: ProxyInfo, es_url: str, index_name: str
) -> None:
    # "a%2Fb" is one document id; a proxy that decoded the path would send "a/b".
    async with client_for(proxy, **api_key_header(proxy)) as http:
        created = await http.put(
            f"{proxy.url}/{index_name}/_doc/a%2Fb", params={"refresh": "true"}, json={"n": 1}
        )
        outside = await http.get(f"{proxy.url}x/_cluster/health")
    assert created.status_code == 201, created.text
    assert outside.status_code == 404
    async with httpx.AsyncClient(timeout=30) as direct:
        stored = await direct.get(f"{es_url}/{index_name}/_doc/a%2Fb")
    assert stored.json()["_id"] == "a/b"
    assert stored.json()["_source"] == {"n": 1}


async def test_a_body_larger_than_nginx_buffers_in_memory_gets_through(proxy: ProxyInfo) -> None:
    # nginx spools bodies over 16 KB to client_body_temp in the test's 0700 directory, which a
    # worker running as nobody could not open (a 500 only large bulk requests would meet).
    body = b'{"query": {"match_all": {}}, "size": 0}' + b" " * 200_000
    async with client_for(proxy, **api_key_header(proxy)) as http:
        response = await http.post(
            f"{proxy.url}/_search", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["timed_out"] is False


async def test_plain_http_to_the_tls_port_is_not_proxied(proxy: ProxyInfo) -> None:
    plain = proxy.url.replace("https://", "http://")
    async with httpx.AsyncClient(headers=api_key_header(proxy), timeout=30) as http:
        response = await http.get(f"{plain}/_cluster/health")
    assert response.status_code == 400
    assert "plain HTTP request was sent to HTTPS port" in response.text
    assert "cluster_name" not in response.text
    (line,) = await logged(proxy, 1)
    assert '" 400 ' in line
    assert "upstream_status=- " in line


async def test_a_tls_upstream_is_verified_and_gets_the_proxy_credentials(
    proxy: ProxyInfo, tmp_path: Path
) -> None:
    # A second proxy in front of the first: its upstream is https with a path prefix, and
    # only the Authorization that the second proxy substitutes gets through the first.
    async with trio.open_nursery() as nursery:
        front: ProxyInfo = await nursery.start(
            functools.partial(
                serve_api_key_proxy,
                proxy.url,
                tmp_path / "front",
                upstream_ca=proxy.ca_certs,
                upstream_authorization=f"ApiKey {proxy.api_key}",
                prefix="/front",
            )
        )
        assert front.url.endswith("/front")
        assert front.api_key != proxy.api_key
        async with client_for(front, **api_key_header(front), **{"X-Opaque-Id": "chain"}) as http:
            response = await http.get(f"{front.url}/_cluster/health")
            refused = await http.get(
                f"{front.url}/_cluster/health", headers={"Authorization": "ApiKey bm86bm8="}
            )
        nursery.cancel_scope.cancel()
    assert response.status_code == 200, response.text
    assert "cluster_name" in response.json()
    assert refused.status_code == 401
    (inner,) = await logged(proxy, 1)
    assert '"GET /es/_cluster/health HTTP/1.1" 200 ' in inner
    assert 'opaque_id="chain"' in inner


async def test_an_upstream_signed_by_another_ca_is_refused(
    proxy: ProxyInfo, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    async with trio.open_nursery() as nursery:
        front: ProxyInfo = await nursery.start(
            functools.partial(
                serve_api_key_proxy,
                proxy.url,
                tmp_path / "front",
                upstream_ca=str(stranger),
                upstream_authorization=f"ApiKey {proxy.api_key}",
            )
        )
        async with client_for(front, **api_key_header(front)) as http:
            response = await http.get(f"{front.url}/_cluster/health")
        nursery.cancel_scope.cancel()
    assert response.status_code == 502
    assert "upstream SSL certificate verify error" in (tmp_path / "front" / "error.log").read_text()
    assert log_lines(proxy) == []
