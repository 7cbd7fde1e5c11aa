"""The secured local Elasticsearch (``es start --secure``): its pieces, then a real node.

The real node is the session's ``secure_es`` (port ``TEST_ES_PORT + 10``): TLS
verified against its own CA, file-realm users and a service token. Every index
a test makes is named for that test alone and deleted by the admin afterwards.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import trio
from conftest import SECURE_ES_PORT, TEST_ENGINE, TEST_ENGINE_VERSION, session_node

from trio_books.errors import LocalElasticsearchError
from trio_books.es import local, security

CACHE = local.default_cache_dir()


def secure_layout() -> local.NodeLayout:
    return session_node(SECURE_ES_PORT, secure=True)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_books", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def secrets_of(info: security.SecureInfo) -> list[str]:
    return [
        info.admin.password,
        info.reader.password,
        info.loader.password,
        info.service_token,
    ]


def client(
    info: security.SecureInfo, auth: httpx.Auth | tuple[str, str] | None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=info.url, verify=info.ssl_context(), auth=auth, timeout=30)


def as_user(info: security.SecureInfo, user: security.User) -> httpx.AsyncClient:
    who = info.credentials(user)
    return client(info, (who.username, who.password))


def plaintext_warnings() -> int:
    """How often the node logged a plaintext request on its TLS port."""
    log = secure_layout().server_log()
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.count("received plaintext http traffic on an https channel")


@pytest.fixture
async def scratch_index(secure_es: security.SecureInfo) -> AsyncIterator[str]:
    """An index name of this test's own; the admin deletes it afterwards."""
    name = f"test-secure-{uuid.uuid4().hex[:10]}"
    yield name
    with trio.CancelScope(shield=True):
        async with as_user(secure_es, "admin") as admin:
            await admin.delete(f"/{name}", params={"ignore_unavailable": "true"})


# ---------------------------------------------------------------- the pure pieces


def test_secure_layout_speaks_https_and_turns_security_on(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, port=9333, secure=True)
    assert layout.url == "https://127.0.0.1:9333"
    command = local.server_command(layout)
    certs = layout.config_dir / "certs"
    for setting in (
        "-Expack.security.enabled=true",
        "-Expack.security.http.ssl.enabled=true",
        f"-Expack.security.http.ssl.key={certs / 'node.key'}",
        f"-Expack.security.http.ssl.certificate={certs / 'node.crt'}",
        f"-Expack.security.http.ssl.certificate_authorities={certs / 'ca.crt'}",
        "-Expack.security.transport.ssl.enabled=true",
        "-Expack.security.transport.ssl.verification_mode=certificate",
    ):
        assert setting in command
    assert "-Expack.security.enabled=false" not in command
    assert all(Path(value).is_absolute() for value in security.server_settings(layout).values()
               if value.startswith("/"))  # fmt: skip


def test_plain_layout_is_unchanged(tmp_path: Path) -> None:
    layout = local.NodeLayout(tmp_path, port=9333)
    assert layout.url == "http://127.0.0.1:9333"
    assert not [s for s in local.server_command(layout) if "ssl" in s]


def test_cluster_layouts_carry_secure(tmp_path: Path) -> None:
    layouts = local.cluster_layouts(tmp_path, nodes=2, port=9333, secure=True)
    assert [layout.url for layout in layouts] == [
        "https://127.0.0.1:9333",
        "https://127.0.0.1:9334",
    ]
    # One realm for the cluster, so every node takes the same passwords.
    assert {security.realm_dir(layout) for layout in layouts} == {
        tmp_path / "security" / "realm-9333"
    }


def test_service_token_is_read_from_the_tool_output() -> None:
    output = "SERVICE_TOKEN elastic/fleet-server/trio-books = AAEAAWVsYXN0aWM6abc_-1\n"
    assert security.parse_service_token(output) == "AAEAAWVsYXN0aWM6abc_-1"
    with pytest.raises(LocalElasticsearchError, match="no SERVICE_TOKEN line"):
        security.parse_service_token("SERVICE_TOKEN elastic/fleet-server/other = x\n")


def test_secure_info_round_trips_and_hides_secrets() -> None:
    info = security.SecureInfo(
        url="https://127.0.0.1:9200",
        ca_certs=Path("/tmp/ca.crt"),
        fingerprint="ab" * 32,
        admin=security.Credentials("trio_books_admin", "pw-admin"),
        reader=security.Credentials("trio_books_reader", "pw-reader"),
        loader=security.Credentials("trio_books_loader", "pw-loader"),
        service_token="tok-en",
    )
    assert security.SecureInfo.from_json(info.to_json()) == info
    assert info.environment() == {
        "TRIO_BOOKS_ES_URLS": "https://127.0.0.1:9200",
        "TRIO_BOOKS_ES_CA_CERTS": "/tmp/ca.crt",
        "TRIO_BOOKS_ES_USERNAME": "trio_books_reader",
        "TRIO_BOOKS_ES_PASSWORD": "pw-reader",
    }
    assert info.environment("loader")["TRIO_BOOKS_ES_USERNAME"] == "trio_books_loader"
    assert not any(secret in repr(info) for secret in secrets_of(info))


def test_elasticsearch_401_counts_as_elasticsearch() -> None:
    refusal = {"error": {"type": "security_exception", "reason": "missing credentials"}}
    assert local.looks_like_elasticsearch(401, refusal)
    assert not local.looks_like_elasticsearch(401, {"error": "nope"})
    assert local.looks_like_elasticsearch(200, {"cluster_name": "x", "status": "green"})


# ---------------------------------------------------------------- the real node: TLS


async def test_without_credentials_the_node_answers_401(secure_es: security.SecureInfo) -> None:
    async with client(secure_es, None) as http:
        response = await http.get("/_cluster/health")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "security_exception"


async def test_reader_gets_health_over_verified_tls(secure_es: security.SecureInfo) -> None:
    assert secure_es.url == f"https://127.0.0.1:{SECURE_ES_PORT}"
    async with as_user(secure_es, "reader") as http:
        response = await http.get("/_cluster/health")
    assert response.status_code == 200
    assert response.json()["status"] in {"green", "yellow"}


def test_plaintext_http_gets_no_http_answer(secure_es: security.SecureInfo) -> None:
    with socket.create_connection(("127.0.0.1", SECURE_ES_PORT), timeout=10) as sock:
        sock.sendall(b"GET /_cluster/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    # Elasticsearch closes the connection without a byte (and logs a warning).
    assert received == b""


def test_fingerprint_is_the_sha256_of_the_ca(secure_es: security.SecureInfo) -> None:
    der = ssl.PEM_cert_to_DER_cert(secure_es.ca_certs.read_text())
    assert secure_es.fingerprint == hashlib.sha256(der).hexdigest()
    assert len(secure_es.fingerprint) == 64
    assert secure_es.fingerprint == secure_es.fingerprint.lower()


def test_the_presented_chain_includes_the_ca(secure_es: security.SecureInfo) -> None:
    context = secure_es.ssl_context()
    with (
        socket.create_connection(("127.0.0.1", SECURE_ES_PORT), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        # What the server sent, before any completion from the trust store
        # (public as SSLSocket.get_unverified_chain() from Python 3.13).
        chain = tls._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
        ders = [cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in chain]  # type: ignore[attr-defined]
    assert len(ders) == 2
    assert hashlib.sha256(ders[-1]).hexdigest() == secure_es.fingerprint


def test_secure_json_is_readable_by_its_owner_only(secure_es: security.SecureInfo) -> None:
    path = security.secure_file(secure_layout())
    state = path.stat()
    assert state.st_mode & 0o777 == 0o600
    assert state.st_uid == os.geteuid()
    # The CA, though, is for any local user's client.
    assert secure_es.ca_certs.stat().st_mode & 0o004


# ---------------------------------------------------------------- the real node: who may do what


async def test_service_token_reads_health_but_not_indices(
    secure_es: security.SecureInfo, scratch_index: str
) -> None:
    async with as_user(secure_es, "admin") as admin:
        assert (await admin.put(f"/{scratch_index}")).status_code == 200
    bearer = {"Authorization": f"Bearer {secure_es.service_token}"}
    async with client(secure_es, None) as http:
        health = await http.get("/_cluster/health", headers=bearer)
        search = await http.post(f"/{scratch_index}/_search", headers=bearer, json={})
    assert health.status_code == 200
    assert search.status_code == 403


async def test_reader_may_not_create_an_index(
    secure_es: security.SecureInfo, scratch_index: str
) -> None:
    async with as_user(secure_es, "reader") as http:
        response = await http.put(f"/{scratch_index}")
    assert response.status_code == 403


async def test_loader_creates_writes_and_deletes(
    secure_es: security.SecureInfo, scratch_index: str
) -> None:
    async with as_user(secure_es, "loader") as http:
        assert (await http.put(f"/{scratch_index}")).status_code == 200
        written = await http.post(
            f"/{scratch_index}/_doc", params={"refresh": "true"}, json={"title": "Dune"}
        )
        assert written.status_code == 201
        found = await http.post(f"/{scratch_index}/_search", json={})
        assert found.json()["hits"]["total"]["value"] == 1
        assert (await http.delete(f"/{scratch_index}")).status_code == 200
    async with as_user(secure_es, "reader") as http:
        assert (await http.get(f"/{scratch_index}/_count")).status_code == 404


# ---------------------------------------------------------------- the runner and the CLI


async def test_probe_never_speaks_plaintext_to_a_secure_node(
    secure_es: security.SecureInfo,
) -> None:
    layout = secure_layout()
    before = plaintext_warnings()
    assert await local.probe_node(layout) is local.PortState.ELASTICSEARCH
    # Without the CA there is nothing to verify the node with: not ours to call Elasticsearch.
    assert await local.probe(secure_es.url) is local.PortState.OTHER
    wrong = replace(secure_es, admin=security.Credentials("trio_books_admin", "wrong-password"))
    assert await local.probe(secure_es.url, secure=wrong) is local.PortState.ELASTICSEARCH
    # A plain start where the secure node runs is refused before any request.
    with pytest.raises(LocalElasticsearchError, match="runs with security"):
        await local.start(session_node(SECURE_ES_PORT))
    assert await local.start(layout) == secure_es.url
    await trio.sleep(0.5)  # let the node's log catch up
    assert plaintext_warnings() == before


def test_cli_start_secure_prints_what_to_paste(secure_es: security.SecureInfo) -> None:
    done = run_cli(
        "es",
        "start",
        "--secure",
        "--port",
        str(SECURE_ES_PORT),
        "--engine",
        TEST_ENGINE.name,
        "--version",
        TEST_ENGINE_VERSION,
    )
    assert done.returncode == 0, done.stderr
    assert "already answers" in done.stderr
    for key, value in secure_es.environment().items():
        assert f"export {key}={value}\n" in done.stdout
    assert f"CA SHA-256 fingerprint: {secure_es.fingerprint}" in done.stdout
    assert str(security.secure_file(secure_layout())) in done.stdout
    # Only the reader's password is handed out.
    assert secure_es.admin.password not in done.stdout + done.stderr
    assert secure_es.reader.password not in done.stderr


@pytest.mark.parametrize("flags", [["--secure"], []])
def test_cli_status_secure_prints_no_password(
    secure_es: security.SecureInfo, flags: list[str]
) -> None:
    done = run_cli("es", "status", *flags, "--port", str(SECURE_ES_PORT))
    assert done.returncode == 0, done.stderr
    assert f"url: {secure_es.url}" in done.stdout
    assert f"engine: {TEST_ENGINE.title}\nversion: {TEST_ENGINE_VERSION}\n" in done.stdout
    assert any(f"health: {state}" in done.stdout for state in ("green", "yellow"))
    assert not any(secret in done.stdout + done.stderr for secret in secrets_of(secure_es))


def test_cli_status_secure_without_a_secure_node_exits_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trio_books", "es", "status", "--secure", "--port", "9399"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TRIO_BOOKS_CACHE_DIR": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 2
    assert "no secure Elasticsearch was provisioned on port 9399" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
