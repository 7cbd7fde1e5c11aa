"""The service against a secured Elasticsearch: TLS, credentials, refusals and secrets.

Every server here is real: the session's secured node (``es start --secure``:
HTTP TLS with its own CA, file-realm users, a service-account token), Debian's
nginx accepting one API key in front of it, and small TCP listeners of the
test's own for what no Elasticsearch does (accepting cleartext on a TLS
URL, streaming an answer without end).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import os
import re
import signal
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme
from catalogue import BOOKS
from nginx_proxy import serve_api_key_proxy
from servers import BUILDS, api_client

from trio_books.api.routes import SERVICE_KEY
from trio_books.api.service import SearchService
from trio_books.core.bulk import bulk_body
from trio_books.core.mapping import index_body
from trio_books.errors import CredentialsRefused, TrioBooksError
from trio_books.es.client import Elasticsearch
from trio_books.es.connection import connection_config
from trio_books.es.opening import open_elasticsearch
from trio_books.es.security import SecureInfo
from trio_books.settings import Settings
from trio_books.trio.app import TRANSPORT_KEY, create_app

SEARCH = "/api/v1/search/"
REFUSED = CredentialsRefused.PUBLIC_MESSAGE


def secure_settings(info: SecureInfo, index: str, **changes: object) -> Settings:
    """Settings for the secured node as the reader, verified by the node's CA file."""
    values: dict[str, object] = {
        "es_urls": [info.url],
        "es_ca_certs": str(info.ca_certs),
        "es_username": info.reader.username,
        "es_password": info.reader.password,
        "index": index,
        "facet_size": 100,
        "search_deadline": 30.0,
        **changes,
    }
    return Settings(**values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def as_admin(info: SecureInfo) -> AsyncIterator[Elasticsearch]:
    settings = Settings(
        es_urls=[info.url],
        es_ca_certs=str(info.ca_certs),
        es_username=info.admin.username,
        es_password=info.admin.password,  # type: ignore[arg-type]
    )
    async with open_elasticsearch(connection_config(settings)) as es:
        yield es


@pytest.fixture
async def secure_catalogue(secure_es: SecureInfo) -> AsyncIterator[str]:
    """The test catalogue in an index of its own on the secured node."""
    name = f"test-secure-{uuid.uuid4().hex[:8]}"
    async with as_admin(secure_es) as es:
        await es.create_index(name, index_body())
        result = await es.bulk(bulk_body(name, BOOKS), refresh=True)
        assert result["errors"] is False
        try:
            yield name
        finally:
            with trio.CancelScope(shield=True):
                await es.delete_index(name)


def plaintext_warnings(info: SecureInfo) -> int:
    """How often the secured node logged a cleartext request on its TLS port."""
    logs = Path(info.ca_certs).parents[2] / "logs"
    return sum(
        path.read_text(errors="replace").count("received plaintext http traffic")
        for path in logs.glob("*.log")
    )


# ---------------------------------------------------------------- the API over TLS


@pytest.mark.parametrize("build", BUILDS)
async def test_the_api_answers_over_tls_with_the_readers_password(
    build: str, secure_es: SecureInfo, secure_catalogue: str
) -> None:
    before = plaintext_warnings(secure_es)
    settings = secure_settings(secure_es, secure_catalogue)
    async with api_client(build, settings) as http:
        ready = await http.get("/readyz")
        found = await http.get(SEARCH, params={"q": "hunger", "trace": "1"})
        assert found.status_code == 200, found.text
        tagged = await http.get(SEARCH, params={"tags": "fantasy"})
        book_id = found.json()["results"][0]["book_id"]
        book = await http.get(f"/api/v1/books/{book_id}")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] in {"green", "yellow"}
    assert ready.json()["warnings"] == []
    assert found.status_code == 200, found.text
    assert found.json()["partial"] is False
    assert any("Hunger" in hit["title"] for hit in found.json()["results"])
    assert {span["node"] for span in found.json()["trace"]["tasks"] if span["node"]} == {
        f"https://127.0.0.1:{secure_es.url.rsplit(':', 1)[1]}"
    }
    assert tagged.status_code == 200
    assert tagged.json()["facets"]["tags"], "facets came back empty"
    assert book.status_code == 200
    assert book.json()["book_id"] == book_id
    assert plaintext_warnings(secure_es) == before


async def test_a_pinned_ca_fingerprint_is_enough_without_the_ca_file(
    secure_es: SecureInfo, secure_catalogue: str
) -> None:
    settings = secure_settings(
        secure_es,
        secure_catalogue,
        es_ca_certs=None,
        es_ssl_assert_fingerprint=secure_es.fingerprint,
    )
    async with api_client("trio", settings) as http:
        found = await http.get(SEARCH, params={"q": "hunger"})
    assert found.status_code == 200, found.text


async def test_userinfo_in_the_url_becomes_basic_auth_and_is_shown_nowhere(
    secure_es: SecureInfo, secure_catalogue: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = secure_es.reader.password
    port = secure_es.url.rsplit(":", 1)[1]
    settings = secure_settings(
        secure_es,
        secure_catalogue,
        es_urls=[f"https://{secure_es.reader.username}:{password}@127.0.0.1:{port}"],
        es_username=None,
        es_password=None,
    )
    assert password not in repr(settings)
    app = create_app(settings)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        found = await client.get(f"{SEARCH}?q=hunger&trace=1")
        missing = await client.get("/api/v1/books/999999?trace=1")
        body = await found.get_data(as_text=True)
        missing_body = await missing.get_data(as_text=True)
    assert found.status_code == 200, body
    assert missing.status_code == 404
    nodes = {span["node"] for span in (await found.get_json())["trace"]["tasks"] if span["node"]}
    assert nodes == {f"https://127.0.0.1:{port}"}
    for text in (body, missing_body, caplog.text, str(found.headers), str(missing.headers)):
        assert password not in text
        assert f"{secure_es.reader.username}:" not in text


async def test_unverified_certificates_work_but_are_warned_about_at_start_and_on_readyz(
    secure_es: SecureInfo, secure_catalogue: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = secure_settings(secure_es, secure_catalogue, es_ca_certs=None, es_verify_certs=False)
    app = create_app(settings)
    async with app.test_app() as test_app:
        ready = await test_app.test_client().get("/readyz")
        body = await ready.get_json()
    assert ready.status_code == 200
    assert body["warnings"] == [
        "Elasticsearch's TLS certificates are not verified (es_verify_certs=false)"
    ]
    assert "certificates are not verified" in caplog.text


async def test_tls_connections_are_kept_alive_not_made_per_search(
    secure_es: SecureInfo, secure_catalogue: str
) -> None:
    app = create_app(secure_settings(secure_es, secure_catalogue))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        for _ in range(20):
            assert (await client.get(f"{SEARCH}?q=hunger")).status_code == 200
        (stats,) = app.extensions[TRANSPORT_KEY].stats().values()
    # Four branches a search, twenty searches: a handshake each would be 80.
    assert stats.opened <= 6
    assert stats.reused >= 70


# ---------------------------------------------------------------- an API key, through a proxy


@pytest.mark.needs("nginx")
async def test_an_api_key_through_a_tls_proxy_with_a_path_prefix(
    secure_es: SecureInfo, secure_catalogue: str, tmp_path: Path
) -> None:
    reader = base64.b64encode(
        f"{secure_es.reader.username}:{secure_es.reader.password}".encode()
    ).decode()
    async with trio.open_nursery() as nursery:
        proxy = await nursery.start(
            functools.partial(
                serve_api_key_proxy,
                secure_es.url,
                tmp_path,
                upstream_ca=str(secure_es.ca_certs),
                upstream_authorization=f"Basic {reader}",
            )
        )
        settings = Settings(
            es_urls=[proxy.url],
            es_ca_certs=proxy.ca_certs,
            es_api_key=proxy.api_key,  # type: ignore[arg-type]
            index=secure_catalogue,
            facet_size=100,
            search_deadline=30.0,
        )
        for build in BUILDS:
            async with api_client(build, settings) as http:
                found = await http.get(
                    SEARCH, params={"q": "hunger"}, headers={"X-Request-Id": f"key-{build}"}
                )
                ready = await http.get("/readyz")
            assert found.status_code == 200, found.text
            assert any("Hunger" in hit["title"] for hit in found.json()["results"])
            assert ready.status_code == 200, ready.text
        wrong = Settings(
            es_urls=[proxy.url],
            es_ca_certs=proxy.ca_certs,
            es_api_key="not-the-key",  # type: ignore[arg-type]
            index=secure_catalogue,
        )
        async with api_client("trio", wrong) as http:
            refused = await http.get(SEARCH, params={"q": "hunger"})
        nursery.cancel_scope.cancel()
    log = proxy.access_log.read_text()
    # Every call went under the prefix, named by the request's id, with a versioned agent.
    assert re.search(r'"POST /es/test-secure-\w+/_search', log)
    for build in BUILDS:
        assert f'opaque_id="key-{build}"' in log
    assert re.search(r'user_agent="trio_books/\d+\.\d+', log)
    assert proxy.api_key not in log
    assert refused.status_code == 503
    assert refused.json()["message"] == REFUSED


# ---------------------------------------------------------------- refused credentials


async def search_as(
    settings: Settings,
) -> tuple[int, dict[str, Any], SearchService, int, dict[str, Any]]:
    """One search on the Trio app: status, body, the service, Elasticsearch calls the
    search made, and then what ``/readyz`` answered (its status under ``"status_code"``)."""
    app = create_app(settings)

    def calls_so_far() -> int:
        return sum(s.opened + s.reused for s in app.extensions[TRANSPORT_KEY].stats().values())

    async with app.test_app() as test_app:
        # The start-up's own calls (which engine answers) are not the search's.
        before = calls_so_far()
        response = await test_app.test_client().get(f"{SEARCH}?q=hunger")
        service: SearchService = app.extensions[SERVICE_KEY]
        calls = calls_so_far() - before
        ready = await test_app.test_client().get("/readyz")
        readiness = {**await ready.get_json(), "status_code": ready.status_code}
        return response.status_code, await response.get_json(), service, calls, readiness


def two_names_for(info: SecureInfo) -> list[str]:
    # The same node under two names: a retry would have another "node" to go to.
    port = info.url.rsplit(":", 1)[1]
    return [info.url, f"https://localhost:{port}"]


@pytest.mark.parametrize("credential", ["password", "bearer"])
async def test_wrong_credentials_answer_503_without_retries_or_dead_nodes(
    secure_es: SecureInfo,
    secure_catalogue: str,
    credential: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    secret = f"wrong-{uuid.uuid4().hex}"
    changes: dict[str, object] = {"es_urls": two_names_for(secure_es)}
    if credential == "password":
        changes["es_password"] = secret
    else:
        changes |= {"es_username": None, "es_password": None, "es_bearer_auth": secret}
    status, body, service, calls, ready = await search_as(
        secure_settings(secure_es, secure_catalogue, **changes)
    )
    assert (ready["status_code"], ready["message"]) == (503, REFUSED)
    assert (status, body["error"], body["message"]) == (
        503,
        "elasticsearch_credentials_refused",
        REFUSED,
    )
    # One call per branch at most, none repeated on the other name.
    assert calls <= 5, f"{calls} calls to Elasticsearch for one refused search"
    assert service.es.nodes.dead(service.es.clock()) == []
    kind = "basic auth as trio_books_reader" if credential == "password" else "a bearer token"
    assert re.search(rf"answered 401 \(credentials refused\) to {kind}", caplog.text)
    assert secret not in caplog.text
    assert secret not in str(body)


async def test_a_service_token_is_authenticated_but_not_allowed_to_search(
    secure_es: SecureInfo, secure_catalogue: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = secure_settings(
        secure_es,
        secure_catalogue,
        es_urls=two_names_for(secure_es),
        es_username=None,
        es_password=None,
        es_bearer_auth=secure_es.service_token,
    )
    status, body, service, calls, ready = await search_as(settings)
    assert (status, body["message"]) == (503, REFUSED)
    # Authenticated, and the cluster's health is its to see, but not the index: searches
    # cannot succeed, so the service is not ready.
    assert (ready["status_code"], ready["message"]) == (503, REFUSED)
    assert calls <= 5
    assert service.es.nodes.dead(service.es.clock()) == []
    assert "answered 403 (not allowed) to a bearer token" in caplog.text
    assert secure_es.service_token not in caplog.text


# ---------------------------------------------------------------- certificates


async def test_a_wrong_ca_or_fingerprint_is_refused_before_any_request(
    secure_es: SecureInfo, secure_catalogue: str, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    before = plaintext_warnings(secure_es)
    for changes in (
        {"es_ca_certs": str(other_ca)},
        {"es_ca_certs": None, "es_ssl_assert_fingerprint": "ab" * 32},
    ):
        settings = secure_settings(secure_es, secure_catalogue, **changes)
        for build in BUILDS:
            async with api_client(build, settings) as http:
                ready = await http.get("/readyz")
                found = await http.get(SEARCH, params={"q": "hunger"})
            assert ready.status_code == 503
            assert ready.json()["error"] == "elasticsearch_certificate_refused"
            assert "certificate" in ready.json()["message"]
            assert found.status_code == 503
            assert found.json()["error"] == "elasticsearch_certificate_refused"
    assert plaintext_warnings(secure_es) == before


async def test_http_to_the_tls_port_fails_with_a_message_that_says_so(
    secure_es: SecureInfo, secure_catalogue: str
) -> None:
    plain = secure_es.url.replace("https://", "http://")
    settings = secure_settings(secure_es, secure_catalogue, es_urls=[plain])
    async with api_client("trio", settings) as http:
        ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["message"].endswith("its URL must be an https one")
    assert "127.0.0.1" not in ready.json()["message"]


# ---------------------------------------------------------------- peers of the test's own


async def test_https_to_a_plaintext_listener_sends_a_client_hello_first() -> None:
    received: list[bytes] = []

    async def record_first_bytes(stream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError):
            received.append(await stream.receive_some(5))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(
            functools.partial(trio.serve_tcp, record_first_bytes, 0, host="127.0.0.1")
        )
        port = listener.socket.getsockname()[1]
        settings = Settings(es_urls=[f"https://127.0.0.1:{port}"], index="books")
        async with open_elasticsearch(connection_config(settings)) as es:
            with pytest.raises(Exception, match="unreachable"):
                await es.cluster_health(time_limit=5)
        nursery.cancel_scope.cancel()
    assert received
    assert all(first[:2] == b"\x16\x03" for first in received), received
    assert not any(first.startswith((b"GET", b"POST", b"HEAD")) for first in received)


async def test_an_answer_without_end_fails_at_the_cap_while_the_worker_serves_on() -> None:
    sent = 0
    cap = 4 * 1024 * 1024
    chunk = b"x" * 65536

    async def endless(stream: trio.SocketStream) -> None:
        nonlocal sent
        await stream.receive_some(65536)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        await stream.send_all(head + b"transfer-encoding: chunked\r\n\r\n")
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while True:
                await stream.send_all(b"10000\r\n" + chunk + b"\r\n")
                sent += len(chunk)

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(
            functools.partial(trio.serve_tcp, endless, 0, host="127.0.0.1")
        )
        port = listener.socket.getsockname()[1]
        settings = Settings(
            es_urls=[f"http://127.0.0.1:{port}"],
            index="books",
            es_max_response_bytes=cap,
            search_deadline=30.0,
        )
        app = create_app(settings)
        async with app.test_app() as test_app:
            client = test_app.test_client()
            pings = 0
            result: list[int] = []

            async def search() -> None:
                result.append((await client.get(f"{SEARCH}?tags=fantasy")).status_code)

            async def ping_meanwhile() -> None:
                nonlocal pings
                while not result:
                    assert (await client.get("/healthz")).status_code == 200
                    pings += 1

            async with trio.open_nursery() as inner:
                inner.start_soon(search)
                inner.start_soon(ping_meanwhile)
        nursery.cancel_scope.cancel()
    assert result == [502]
    assert pings > 0, "the worker answered nothing while the endless answer was read"
    # Stopped at the cap, per call: the fan-out's branches each read up to it, no further.
    assert sent < 6 * (cap + 2 * len(chunk)) + 8 * 1024 * 1024


# ---------------------------------------------------------------- the commands, as a user runs them


ANNOUNCED = re.compile(rb"serving on (http://\S+)")


def bare_environment(variables: dict[str, str]) -> dict[str, str]:
    """The machine's environment without any TRIO_BOOKS_ setting, plus *variables*."""
    kept = {key: value for key, value in os.environ.items() if not key.startswith("TRIO_BOOKS_")}
    return {**kept, **variables}


async def test_load_as_the_loader_then_serve_with_only_the_readers_variables(
    secure_es: SecureInfo, tmp_path: Path
) -> None:
    alias = f"test-secure-load-{uuid.uuid4().hex[:8]}"
    loader = bare_environment({**secure_es.environment("loader"), "TRIO_BOOKS_INDEX": alias})
    try:
        loaded = await trio.run_process(
            [sys.executable, "-m", "trio_books", "load", "--synthetic", "300", "--json"],
            env=loader,
            cwd=tmp_path,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        output = (loaded.stdout + loaded.stderr).decode()
        assert loaded.returncode == 0, output
        summary = json.loads(loaded.stdout.splitlines()[-1])
        assert (summary["indexed"], summary["published"]) == (300, True)
        reader = bare_environment({**secure_es.environment("reader"), "TRIO_BOOKS_INDEX": alias})
        command = [sys.executable, "-m", "trio_books", "serve", "--port", "0"]
        process = await trio.lowlevel.open_process(command, env=reader, stderr=subprocess.PIPE)
        assert process.stderr is not None
        logged = b""
        try:
            with trio.fail_after(60):
                while not (found := ANNOUNCED.search(logged)):
                    chunk = await process.stderr.receive_some()
                    assert chunk, logged.decode(errors="replace")
                    logged += chunk
            async with httpx.AsyncClient(base_url=found.group(1).decode()) as http:
                ready = await http.get("/readyz")
                searched = await http.get(SEARCH)
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(30):
                while chunk := await process.stderr.receive_some():
                    logged += chunk
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.stderr.aclose()
    finally:
        async with as_admin(secure_es) as es:
            versions = await es.request("GET", f"/{alias}*", params={"filter_path": "*.settings"})
            for index in versions or {}:
                await es.delete_index(index)
    assert ready.status_code == 200, ready.text
    assert searched.status_code == 200, searched.text
    assert searched.json()["count"] == 300
    for text in (output, logged.decode(errors="replace"), searched.text):
        assert secure_es.loader.password not in text
        assert secure_es.reader.password not in text


async def test_mutual_tls_presents_the_client_certificate_when_the_node_asks(
    tmp_path: Path,
) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("trio-books-client")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED  # no certificate, no answer
    ca_file, chain_file = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client_cert.private_key_and_cert_chain_pem.write_to_path(str(chain_file))
    peers: list[str] = []

    async def answer(stream: trio.SSLStream[trio.SocketStream]) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.do_handshake()
            peers.extend(name for kind, name in stream.getpeercert()["subjectAltName"])
            await stream.receive_some()
            body = b'{"cluster_name":"mtls","status":"green"}'
            head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            await stream.send_all(head + body)
            await stream.aclose()

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(
            functools.partial(trio.serve_ssl_over_tcp, answer, 0, server_context, host="127.0.0.1")
        )
        port = listener.transport_listener.socket.getsockname()[1]
        base = {"es_urls": [f"https://127.0.0.1:{port}"], "es_ca_certs": str(ca_file)}
        with_cert = Settings(**base, es_client_cert=str(chain_file))  # type: ignore[arg-type]
        async with open_elasticsearch(connection_config(with_cert)) as es:
            health = await es.cluster_health(time_limit=10)
        without = Settings(**base)  # type: ignore[arg-type]
        async with open_elasticsearch(connection_config(without)) as es:
            with pytest.raises(TrioBooksError, match="unreachable"):
                await es.cluster_health(time_limit=10)
        nursery.cancel_scope.cancel()
    assert health["status"] == "green"
    assert peers == ["trio-books-client"]
