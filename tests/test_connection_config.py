"""The connection configuration built from settings: nodes, credentials, TLS options, limits.

Pure: no server, no sockets. Every test runs in an empty directory with no
``TRIO_BOOKS_*`` variables, so neither a developer's ``.env`` nor the test
session's ``TRIO_BOOKS_ES_URLS`` leaks into the settings under test.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

import trio_books
from trio_books.es.connection import (
    Credentials,
    Node,
    connection_config,
    decode_cloud_id,
    parse_node,
    redact_url,
    split_userinfo,
    take_credentials,
)
from trio_books.settings import Settings
from trio_books.transport.tls import TLSOptions

# Distinctive enough that finding it anywhere means it leaked.
PASSWORD = "Zq9-sekr1t-Xw7"
FINGERPRINT = "AB:" * 31 + "CD"


# Settings read the environment and .env: these tests see neither.
pytestmark = pytest.mark.usefixtures("clean_environment")


def cloud_id(decoded: str, name: str = "books-prod") -> str:
    return f"{name}:" + base64.b64encode(decoded.encode()).decode()


def settings_error(**values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**values)  # type: ignore[arg-type]
    return str(caught.value)


# ---- nodes


@pytest.mark.parametrize(
    ("url", "node"),
    [
        ("http://127.0.0.1:9200", Node("http", "127.0.0.1", 9200, "")),
        ("http://es.example", Node("http", "es.example", 80, "")),
        ("https://es.example", Node("https", "es.example", 443, "")),
        ("https://ES.example:9243/", Node("https", "es.example", 9243, "")),
        ("https://proxy.example/es/", Node("https", "proxy.example", 443, "/es")),
        ("http://[::1]:9200/a/b", Node("http", "::1", 9200, "/a/b")),
        ("https://[2001:db8::7]", Node("https", "2001:db8::7", 443, "")),
    ],
)
def test_parse_node(url: str, node: Node) -> None:
    assert parse_node(url) == node


def test_node_url_host_header_and_target() -> None:
    node = parse_node("https://proxy.example/es")
    assert node.url == "https://proxy.example:443/es"
    assert node.host_header == b"proxy.example:443"
    assert node.target("/books/_search?x=1") == b"/es/books/_search?x=1"
    assert node.target("_cluster/health") == b"/es/_cluster/health"
    ipv6 = parse_node("http://[::1]:9200")
    assert ipv6.url == "http://[::1]:9200"
    assert ipv6.host_header == b"[::1]:9200"
    assert ipv6.target("/") == b"/"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://es.example",
        "http://",
        "http://es.example:port",
        "http://es.example:99999",
        "http://es.example/?x=1",
        "http://es.example/#top",
    ],
)
def test_parse_node_rejects(url: str) -> None:
    with pytest.raises(ValueError, match="node URL"):
        parse_node(url)


def test_parse_node_refuses_credentials_without_quoting_them() -> None:
    with pytest.raises(ValueError, match="carries credentials") as caught:
        parse_node(f"https://elastic:{PASSWORD}@es.example")
    assert PASSWORD not in str(caught.value)
    with pytest.raises(ValueError, match="'@' after its host") as caught:
        parse_node(f"https://elastic:{PASSWORD}/x@es.example")
    assert PASSWORD not in str(caught.value)


def test_redact_url_keeps_everything_but_userinfo() -> None:
    assert redact_url(f"https://u:{PASSWORD}@es.example:9243/es/_search?q=a@b") == (
        "https://es.example:9243/es/_search?q=a@b"
    )
    assert redact_url("http://es.example/a@b") == "http://es.example/a@b"
    assert redact_url(f"u:{PASSWORD}@es.example:9200") == "es.example:9200"
    assert split_userinfo("https://u%40x:p%3Aw%2F@h") == ("https://h", ("u@x", "p:w/"))
    assert split_userinfo("https://u@h") == ("https://h", ("u", None))


def test_take_credentials() -> None:
    urls = [f"http://u:{PASSWORD}@a:9200", "http://b:9200", f"http://u:{PASSWORD}@c:9200/"]
    assert take_credentials(urls) == (
        ["http://a:9200", "http://b:9200", "http://c:9200/"],
        f"u:{PASSWORD}",
    )
    assert take_credentials(["http://a"]) == (["http://a"], None)


# ---- settings keep no password


def test_userinfo_leaves_the_urls_and_becomes_basic_auth() -> None:
    settings = Settings(
        es_urls=[f"https://elastic:{PASSWORD}%40%2F@es1.example:9243/", "https://es2.example"]
    )
    assert settings.es_urls == ["https://es1.example:9243", "https://es2.example"]
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert PASSWORD not in text
    config = connection_config(settings)
    assert config.urls == ["https://es1.example:9243", "https://es2.example:443"]
    assert config.credentials is not None
    assert config.credentials.kind == "basic"
    expected = base64.b64encode(f"elastic:{PASSWORD}@/".encode()).decode()
    assert config.credentials.authorization.get_secret_value() == f"Basic {expected}"
    assert config.credentials.describe() == "basic auth as elastic"
    assert PASSWORD not in repr(config)


def test_userinfo_from_the_environment_is_stripped_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_BOOKS_ES_URLS", f"http://u:{PASSWORD}@a:9200,http://u:{PASSWORD}@b")
    settings = Settings()
    assert settings.es_urls == ["http://a:9200", "http://b"]
    assert settings.es_url_credentials == SecretStr(f"u:{PASSWORD}")


def test_url_credentials_cannot_be_given_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIO_BOOKS_ES_URL_CREDENTIALS", "mallory:x")
    assert Settings().es_url_credentials is None
    assert connection_config(Settings()).credentials is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"es_urls": [f"http://u:{PASSWORD}@a", f"http://v:{PASSWORD}@b"]},
            "different user:password pairs",
        ),
        ({"es_urls": ["http://u@a"]}, "needs 'user:password@'"),
        ({"es_urls": [f"http://u:{PASSWORD}/x@a"]}, "'@' after its host"),
        ({"es_urls": [f"ftp://u:{PASSWORD}@a"]}, "must start with http:// or https://"),
        ({"es_urls": [f"http://u:{PASSWORD}@a:port"]}, "bad port"),
        (
            {"es_urls": [f"http://u:{PASSWORD}@a"], "es_api_key": PASSWORD},
            "es_api_key and user:password in es_urls",
        ),
        (
            {"es_username": "elastic", "es_password": PASSWORD, "es_bearer_auth": PASSWORD},
            "es_username/es_password and es_bearer_auth",
        ),
        ({"es_api_key": PASSWORD, "es_bearer_auth": PASSWORD}, "es_api_key and es_bearer_auth"),
        ({"es_password": PASSWORD}, "es_username and es_password go together"),
        ({"es_username": "elastic"}, "es_username and es_password go together"),
        ({"es_username": "a:b", "es_password": PASSWORD}, "must not contain ':'"),
    ],
)
def test_credential_errors_name_the_rule_and_hide_the_password(
    values: dict[str, object], message: str
) -> None:
    error = settings_error(**values)
    assert message in error
    assert PASSWORD not in error


# ---- each kind of credentials


def test_api_key_encoded_is_sent_as_given() -> None:
    credentials = connection_config(Settings(es_api_key="bm90OmFrZXk=")).credentials
    assert credentials == Credentials("api_key", SecretStr("ApiKey bm90OmFrZXk="))
    assert credentials.describe() == "an API key"


def test_api_key_id_and_key_are_base64_encoded() -> None:
    credentials = connection_config(Settings(es_api_key=f"key-id:{PASSWORD}")).credentials
    assert credentials is not None
    encoded = base64.b64encode(f"key-id:{PASSWORD}".encode()).decode()
    assert credentials.authorization.get_secret_value() == f"ApiKey {encoded}"


def test_username_and_password() -> None:
    settings = Settings(es_username="reader", es_password=PASSWORD)
    assert PASSWORD not in repr(settings)
    credentials = connection_config(settings).credentials
    assert credentials is not None
    assert credentials.kind == "basic"
    encoded = base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
    assert credentials.authorization.get_secret_value() == f"Basic {encoded}"
    assert credentials.describe() == "basic auth as reader"


def test_bearer_token() -> None:
    credentials = connection_config(Settings(es_bearer_auth=PASSWORD)).credentials
    assert credentials == Credentials("bearer", SecretStr(f"Bearer {PASSWORD}"))
    assert credentials.describe() == "a bearer token"
    assert PASSWORD not in repr(credentials)


def test_no_credentials() -> None:
    assert connection_config(Settings()).credentials is None


# ---- TLS options


def test_fingerprint_is_normalised() -> None:
    settings = Settings(es_ssl_assert_fingerprint=FINGERPRINT, es_verify_certs=False)
    assert settings.es_ssl_assert_fingerprint == "ab" * 31 + "cd"
    assert connection_config(settings).tls == TLSOptions(
        verify_certs=False, assert_fingerprint="ab" * 31 + "cd"
    )


@pytest.mark.parametrize("fingerprint", ["ab" * 31, "ab" * 33, "zz" * 32, "sha256:" + "ab" * 32])
def test_fingerprint_rejected(fingerprint: str) -> None:
    assert "64 hex digits" in settings_error(es_ssl_assert_fingerprint=fingerprint)


def test_ca_certs_must_be_an_existing_file(tmp_path: Path) -> None:
    assert "es_ca_certs: no such file" in settings_error(es_ca_certs=str(tmp_path / "ca.pem"))
    assert "es_ca_certs: no such file" in settings_error(es_ca_certs=str(tmp_path))
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert connection_config(Settings(es_ca_certs=str(ca))).tls == TLSOptions(ca_certs=str(ca))


def test_client_key_needs_client_cert(tmp_path: Path) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("cert")
    key.write_text("key")
    assert "es_client_key needs es_client_cert" in settings_error(es_client_key=str(key))
    tls = connection_config(Settings(es_client_cert=str(cert), es_client_key=str(key))).tls
    assert (tls.client_cert, tls.client_key) == (str(cert), str(key))


# ---- Elastic Cloud


def test_decode_cloud_id() -> None:
    assert decode_cloud_id(cloud_id("eu-west-1.aws.found.io$abc123$def456")) == (
        "https://abc123.eu-west-1.aws.found.io:443"
    )
    # No Kibana part, and a port in the host part.
    assert decode_cloud_id(cloud_id("cloud.example:9243$abc123")) == (
        "https://abc123.cloud.example:9243"
    )
    # Unpadded base64, and a name with a colon in it.
    encoded = base64.b64encode(b"cloud.example$abc1$k").decode().rstrip("=")
    assert decode_cloud_id(f"my:deployment:{encoded}") == "https://abc1.cloud.example:443"


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "name:",
        "name:not base64!",
        cloud_id("cloud.example"),
        cloud_id("$abc123"),
        cloud_id("cloud.example:port$abc123"),
        cloud_id("cloud.example:70000$abc123"),
        "name:" + base64.b64encode(b"\xff\xfe$x").decode(),
    ],
)
def test_malformed_cloud_id(malformed: str) -> None:
    with pytest.raises(ValueError, match="es_cloud_id is malformed"):
        decode_cloud_id(malformed)
    assert "es_cloud_id is malformed" in settings_error(es_cloud_id=malformed)


def test_cloud_id_becomes_the_urls_and_turns_compression_on() -> None:
    settings = Settings(es_cloud_id=cloud_id("cloud.example$abc123$k"), es_api_key="a2V5")
    assert settings.es_urls == ["https://abc123.cloud.example:443"]
    config = connection_config(settings)
    assert config.nodes == (Node("https", "abc123.cloud.example", 443, ""),)
    assert config.http_compress is True
    off = Settings(es_cloud_id=cloud_id("cloud.example$abc123"), es_http_compress=False)
    assert connection_config(off).http_compress is False


def test_cloud_id_and_urls_exclude_each_other(monkeypatch: pytest.MonkeyPatch) -> None:
    both = {"es_cloud_id": cloud_id("cloud.example$abc123"), "es_urls": ["http://a"]}
    assert "es_cloud_id and es_urls exclude each other" in settings_error(**both)
    # Given in the environment counts as given, even when it names the default.
    monkeypatch.setenv("TRIO_BOOKS_ES_URLS", "http://127.0.0.1:9200")
    assert "exclude each other" in settings_error(es_cloud_id=cloud_id("cloud.example$abc123"))


# ---- the rest of the configuration


def test_http_compress_defaults_off_without_cloud() -> None:
    assert connection_config(Settings()).http_compress is False
    assert connection_config(Settings(es_http_compress=True)).http_compress is True


def test_max_response_bytes_bounds() -> None:
    assert connection_config(Settings()).max_response_bytes == 32 * 1024 * 1024
    assert "greater than or equal to 1024" in settings_error(es_max_response_bytes=1023)
    assert "less than or equal to" in settings_error(es_max_response_bytes=2**30 + 1)


def test_config_carries_the_limits_and_a_user_agent() -> None:
    settings = Settings(
        es_urls=["http://a:9200", "http://b:9201"],
        es_timeout=7.5,
        es_retries=4,
        es_transport="stock",
        es_pool_size=8,
        es_pool_queue=16,
        es_max_connections=24,
    )
    config = connection_config(settings)
    assert config.urls == ["http://a:9200", "http://b:9201"]
    assert (config.timeout, config.retries, config.transport) == (7.5, 4, "stock")
    assert (config.pool_size, config.pool_queue, config.max_connections) == (8, 16, 24)
    assert config.tls == TLSOptions()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert config.user_agent == f"trio_books/{trio_books.__version__} (Python {python})"


def test_replace_overrides_a_field() -> None:
    config = connection_config(Settings())
    loader = config.replace(pool_size=4, timeout=120.0)
    assert (loader.pool_size, loader.timeout) == (4, 120.0)
    assert loader.nodes == config.nodes
    assert config.pool_size == 32
    with pytest.raises(TypeError):
        config.replace(no_such_field=1)
