"""A connection configuration as ``TRIO_BOOKS_ES_*`` variables, for a child process.

Drills, benchmarks and ``bench-load`` start servers and loaders as child
processes. Each child builds its own configuration from its environment, so
:func:`settings_env` writes the parent's :class:`ConnectionConfig` back into
the variables :func:`~trio_books.es.connection.connection_config` reads: the
child then reaches the same nodes, over the same TLS, with the same
credentials. Pure: no I/O.

The variables hold secrets (an API key, a password): pass them to the child's
environment only, never to a command line, a log or a file.
"""

from __future__ import annotations

from collections.abc import Mapping

from trio_books.es.connection import ConnectionConfig

PREFIX = "TRIO_BOOKS_"
# Every variable that says how to reach Elasticsearch, and so what a child must
# not inherit from the parent beside what settings_env() writes.
CONNECTION_VARIABLES = tuple(
    PREFIX + name
    for name in (
        "ES_URLS",
        "ES_CLOUD_ID",
        "ES_API_KEY",
        "ES_USERNAME",
        "ES_PASSWORD",
        "ES_BEARER_AUTH",
        "ES_CA_CERTS",
        "ES_VERIFY_CERTS",
        "ES_SSL_ASSERT_FINGERPRINT",
        "ES_CLIENT_CERT",
        "ES_CLIENT_KEY",
        "ES_HTTP_COMPRESS",
        "ES_MAX_RESPONSE_BYTES",
    )
)


def settings_env(config: ConnectionConfig) -> dict[str, str]:
    """The ``TRIO_BOOKS_ES_*`` variables from which a child rebuilds *config*.

    Nodes, TLS options, credentials, compression and the answer cap; limits a
    child sizes for itself (timeouts, pools) are left to its own settings.
    """
    env = {
        PREFIX + "ES_URLS": ",".join(config.urls),
        PREFIX + "ES_VERIFY_CERTS": str(config.tls.verify_certs).lower(),
        PREFIX + "ES_HTTP_COMPRESS": str(config.http_compress).lower(),
        PREFIX + "ES_MAX_RESPONSE_BYTES": str(config.max_response_bytes),
    }
    for name, value in (
        ("ES_CA_CERTS", config.tls.ca_certs),
        ("ES_SSL_ASSERT_FINGERPRINT", config.tls.assert_fingerprint),
        ("ES_CLIENT_CERT", config.tls.client_cert),
        ("ES_CLIENT_KEY", config.tls.client_key),
    ):
        if value is not None:
            env[PREFIX + name] = value
    credentials = config.credentials
    if credentials is not None:
        if credentials.kind == "api_key":
            env[PREFIX + "ES_API_KEY"] = credentials.token()
        elif credentials.kind == "bearer":
            env[PREFIX + "ES_BEARER_AUTH"] = credentials.token()
        else:
            user, password = credentials.basic_pair()
            env[PREFIX + "ES_USERNAME"] = user
            env[PREFIX + "ES_PASSWORD"] = password
    return env


def child_env(
    config: ConnectionConfig, parent: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """*parent*'s environment with its connection variables replaced by *config*'s, then *extra*."""
    kept = {name: value for name, value in parent.items() if name not in CONNECTION_VARIABLES}
    return {**kept, **settings_env(config), **(extra or {})}
