"""Behind a reverse proxy: the client's address from trusted headers only, and a path prefix.

The direct tests serve both builds and send forwarding headers themselves; the
last one runs ``deploy/nginx.conf`` in Debian's nginx in front of the Trio
build, with the test's client on a loopback address of its own (127.0.0.2), so
that "the client" and "the proxy" are told apart in the service's access log.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import httpx
import pytest
import trio
from log_lines import Lines
from nginx_front import serve_front
from servers import api_client, serving

from trio_books.settings import Settings

pytestmark = pytest.mark.elasticsearch

CLIENT = "127.0.0.2"


@pytest.fixture(autouse=True)
def access_lines(caplog: pytest.LogCaptureFixture) -> None:
    """The access log's lines reach the log_lines handler (the root logger's level is higher)."""
    caplog.set_level(logging.INFO, logger="trio_books.access")


FORGED = "203.0.113.66"


def access_clients(lines: Lines, path: str) -> list[str]:
    return [
        line["client"]
        for line in lines.lines
        if line.get("logger") == "trio_books.access" and line.get("path") == path
    ]


async def test_forwarding_headers_are_ignored_unless_hops_are_trusted(
    build: str, api_settings: Settings, log_lines: Lines
) -> None:
    forged = {"X-Forwarded-For": FORGED, "Forwarded": f"for={FORGED}"}
    async with api_client(build, api_settings) as http:
        assert (await http.get("/healthz", headers=forged)).status_code == 200
    trusting = api_settings.model_copy(update={"trusted_proxy_hops": 1})
    async with api_client(build, trusting) as http:
        # The proxy appended the address it saw; the client's own entry is further left.
        chain = {"X-Forwarded-For": f"{FORGED}, 198.51.100.7"}
        assert (await http.get("/readyz", headers=chain)).status_code == 200
        modern = {"Forwarded": f"for={FORGED}, for=192.0.2.60;proto=https"}
        assert (await http.get("/", headers=modern)).status_code == 200
    assert access_clients(log_lines, "/healthz") == ["127.0.0.1"]
    assert access_clients(log_lines, "/readyz") == ["198.51.100.7"]
    assert access_clients(log_lines, "/") == ["192.0.2.60"]


async def test_under_a_root_path_with_or_without_the_prefix_in_the_path(
    build: str, api_settings: Settings
) -> None:
    settings = api_settings.model_copy(update={"root_path": "/books"})
    async with api_client(build, settings) as http:
        kept = await http.get("/books/api/v1/search/", params={"q": "dune"})
        stripped = await http.get("/api/v1/search/", params={"q": "dune"})
        root = await http.get("/books")
        redirect = await http.get("/books/api/v1/search", params={"q": "dune"})
        other = await http.get("/bookshelf/api/v1/search/", params={"q": "dune"})
        document = (await http.get("/books/openapi.json")).json()
        docs = await http.get("/books/docs")
    assert kept.status_code == stripped.status_code == 200
    assert kept.json()["count"] == stripped.json()["count"] > 0
    assert root.status_code == 200
    # Relative: the redirect stays under the prefix the client used.
    assert redirect.status_code == 308
    assert redirect.headers["location"] == "search/?q=dune"
    assert other.status_code == 404
    assert document["servers"] == [{"url": "/books"}]
    assert 'url: "/books/openapi.json"' in docs.text


@pytest.mark.needs("nginx")
async def test_the_deploy_nginx_conf_in_front_of_the_service(
    api_settings: Settings, tmp_path: Path, log_lines: Lines
) -> None:
    settings = api_settings.model_copy(update={"trusted_proxy_hops": 1})
    async with serving("trio", settings) as url, trio.open_nursery() as nursery:
        upstream_port = int(url.rsplit(":", 1)[1])
        front = await nursery.start(serve_front, upstream_port, tmp_path / "nginx")
        context = ssl.create_default_context(cafile=front.ca_certs)

        def client(*, http2: bool) -> httpx.AsyncClient:
            transport = httpx.AsyncHTTPTransport(
                verify=context, http2=http2, http1=not http2, local_address=CLIENT
            )
            return httpx.AsyncClient(base_url=front.url, transport=transport, timeout=30)

        async with client(http2=True) as http:
            search = await http.get(
                "/api/v1/search/",
                params={"q": "the", "size": 50},
                headers={"X-Forwarded-For": FORGED, "Accept-Encoding": "gzip"},
            )
            metrics = await http.get("/metrics")
            page = await http.get("/ui")
            answers: list[httpx.Response] = []

            async def one() -> None:
                answers.append(await http.get("/api/v1/no-such-route"))

            # At once, past the burst the file allows (40): the rest is refused at the proxy.
            async with trio.open_nursery() as burst:
                for _ in range(100):
                    burst.start_soon(one)
        async with client(http2=False) as http1:
            upgrade = await http1.get(
                "/healthz", headers={"Connection": "Upgrade", "Upgrade": "h2c"}
            )
        nursery.cancel_scope.cancel()
    assert search.status_code == 200
    assert search.http_version == "HTTP/2"
    assert search.headers["content-encoding"] == "gzip"
    assert search.json()["count"] > 0
    assert page.status_code == 200
    # The figures are not on the public side of the proxy.
    assert metrics.status_code == 404
    assert "trio_books_" not in metrics.text
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(404) >= 1
    assert statuses.count(429) >= 1
    assert set(statuses) <= {404, 429}
    for answer in answers:
        if answer.status_code == 429:
            assert answer.json()["error"] == "too_many_requests"
            assert answer.headers["retry-after"] == "1"
    # An h2c upgrade never reaches the service: a plain HTTP/1.1 answer.
    assert (upgrade.status_code, upgrade.http_version) == (200, "HTTP/1.1")
    # The service logged the test client's address, not the proxy's nor the forged one.
    assert access_clients(log_lines, "/api/v1/search/") == [CLIENT]
    assert set(access_clients(log_lines, "/api/v1/no-such-route")) == {CLIENT}
    nginx_log = front.access_log.read_text()
    assert f'{CLIENT} "GET /api/v1/search/' in nginx_log
