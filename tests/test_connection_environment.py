"""A connection configuration written as ``TRIO_BOOKS_ES_*`` variables for a child process.

Pure: no server, no sockets. Every test runs in an empty directory with no
``TRIO_BOOKS_*`` variables, so neither a developer's ``.env`` nor the test
session's ``TRIO_BOOKS_ES_URLS`` leaks into the settings under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trio_books.bench.peer_fastapi import official_client_options
from trio_books.es.connection import ConnectionConfig, connection_config
from trio_books.es.environment import child_env, settings_env
from trio_books.settings import Settings

# Distinctive enough that finding it anywhere means it leaked.
PASSWORD = "Zq9-sekr1t:Xw7"
FINGERPRINT = "ab" * 32


# Settings read the environment and .env: these tests see neither.
pytestmark = pytest.mark.usefixtures("clean_environment")


def rebuilt(config: ConnectionConfig, monkeypatch: pytest.MonkeyPatch) -> ConnectionConfig:
    """What a child process builds from the variables of *config*."""
    for name, value in settings_env(config).items():
        monkeypatch.setenv(name, value)
    return connection_config(Settings())


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"es_api_key": "key-id:" + PASSWORD},
        {"es_api_key": "a2V5LWlkOnNlY3JldA=="},
        {"es_username": "reader", "es_password": PASSWORD},
        {"es_bearer_auth": PASSWORD},
        {"es_urls": "https://reader:Zq9-sekr1t%3AXw7@es.example:9243/es/"},
        {"es_ssl_assert_fingerprint": FINGERPRINT, "es_http_compress": True},
        {"es_verify_certs": False, "es_max_response_bytes": 4096},
    ],
)
def test_a_child_rebuilds_the_same_configuration(
    given: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        **{"es_urls": "https://es1.example:9200,http://127.0.0.1:9201/prefix", **given}
    )
    config = connection_config(settings)
    assert rebuilt(config, monkeypatch) == config


def test_tls_files_pass_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = (tmp_path / name for name in ("ca.pem", "client.pem", "client.key"))
    for path in (ca, cert, key):
        path.write_text("not read here")
    settings = Settings(
        es_urls=["https://es.example:9200"],
        es_ca_certs=str(ca),
        es_client_cert=str(cert),
        es_client_key=str(key),
    )
    config = connection_config(settings)
    assert rebuilt(config, monkeypatch) == config


def test_the_child_inherits_nothing_else_about_elasticsearch() -> None:
    config = connection_config(Settings(es_urls=["http://127.0.0.1:9250"]))
    parent = {
        "PATH": "/usr/bin",
        "TRIO_BOOKS_INDEX": "books",
        "TRIO_BOOKS_ES_CLOUD_ID": "name:abc",
        "TRIO_BOOKS_ES_API_KEY": "theirs",
    }
    env = child_env(config, parent, {"TRIO_BOOKS_INDEX": "drill"})
    assert env["PATH"] == "/usr/bin"
    assert env["TRIO_BOOKS_INDEX"] == "drill"
    assert env["TRIO_BOOKS_ES_URLS"] == "http://127.0.0.1:9250"
    assert "TRIO_BOOKS_ES_CLOUD_ID" not in env
    assert "TRIO_BOOKS_ES_API_KEY" not in env


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"es_api_key": "a2V5"}, {"api_key": "a2V5"}),
        ({"es_username": "reader", "es_password": PASSWORD}, {"basic_auth": ("reader", PASSWORD)}),
        ({"es_bearer_auth": PASSWORD}, {"bearer_auth": PASSWORD}),
        (
            {"es_ssl_assert_fingerprint": FINGERPRINT, "es_verify_certs": False},
            {"ssl_assert_fingerprint": FINGERPRINT, "verify_certs": False},
        ),
    ],
)
def test_the_official_client_peer_gets_the_same_tls_and_credentials(
    given: dict[str, Any], expected: dict[str, Any]
) -> None:
    config = connection_config(Settings(es_urls=["https://es.example:9200"], **given))
    options = official_client_options(config)
    assert options.items() >= expected.items()
