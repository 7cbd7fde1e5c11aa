"""The one connection configuration: nodes, TLS, credentials and limits, built from settings.

:func:`connection_config` is the only place that reads the ``es_*`` settings;
the transports, the loader and the benchmarks take the :class:`ConnectionConfig`
it returns. Pure: no sockets and no event loop; the only things read are the
settings object and the installed package's version.

Secrets stay in :class:`~pydantic.SecretStr` until the transport writes the
``Authorization`` header, and a node's :attr:`Node.url`, the name it goes by in
traces, logs and metrics, never carries a user name or password.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import importlib.metadata
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from trio_books.transport.connection_pool import DRAIN_SECONDS
from trio_books.transport.http11 import MAX_RESPONSE_BYTES
from trio_books.transport.tls import TLSOptions

if TYPE_CHECKING:
    from trio_books.settings import Settings

DEFAULT_PORTS = {"http": 80, "https": 443}
# How many times a failed call may be tried again on another node, and seconds per call,
# for a configuration not built from settings (:func:`plain_config`).
DEFAULT_RETRIES = 2
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Node:
    """One Elasticsearch node's address, as the transport dials and names it."""

    scheme: Literal["http", "https"]
    # Without brackets, also for IPv6.
    host: str
    # Given in the URL, else 80 or 443 by scheme.
    port: int
    # "" or a path prefix without its trailing slash, e.g. "/es" behind a proxy.
    prefix: str

    @property
    def _authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """``scheme://host:port/prefix``, never with credentials: the node's name in traces and logs."""
        return f"{self.scheme}://{self._authority}{self.prefix}"

    @property
    def host_header(self) -> bytes:
        """The ``Host`` header's value: ``host:port``, an IPv6 host in brackets."""
        return self._authority.encode("ascii")

    def target(self, path_and_query: str) -> bytes:
        """The request target for *path_and_query* on this node: the prefix, then the path.

        Args:
            path_and_query: an already percent-encoded path such as ``/books/_search?x=1``.

        Raises:
            UnicodeEncodeError: *path_and_query* is not ASCII (it was not percent-encoded).
        """
        if not path_and_query.startswith("/"):
            path_and_query = "/" + path_and_query
        return (self.prefix + path_and_query).encode("ascii")


@dataclass(frozen=True)
class Credentials:
    """How requests authenticate: the whole ``Authorization`` header value, kept secret."""

    kind: Literal["basic", "api_key", "bearer"]
    # "Basic …", "ApiKey …" or "Bearer …".
    authorization: SecretStr
    # The user name of basic auth (not secret: it names who the service acts as in logs).
    user: str | None = None

    def token(self) -> str:
        """The secret after the scheme (``ApiKey``/``Bearer``/``Basic``): for handing on, never showing."""
        return self.authorization.get_secret_value().partition(" ")[2]

    def basic_pair(self) -> tuple[str, str]:
        """Basic auth's user and password, decoded (for a child process or another client)."""
        user, _, password = base64.b64decode(self.token()).decode().partition(":")
        return user, password

    def describe(self) -> str:
        """What kind of credentials these are, safe to log: no secret in it."""
        if self.kind == "basic":
            return f"basic auth as {self.user}"
        return "an API key" if self.kind == "api_key" else "a bearer token"


@dataclass(frozen=True)
class ConnectionConfig:
    """Everything a transport needs to reach Elasticsearch; build it with :func:`connection_config`."""

    nodes: tuple[Node, ...]
    tls: TLSOptions
    credentials: Credentials | None
    http_compress: bool
    max_response_bytes: int
    timeout: float
    retries: int
    transport: Literal["trio_books", "stock", "sharded"]
    pool_size: int
    pool_queue: int
    max_connections: int
    # Seconds a cut call's answer may be read on to keep its connection (0: never).
    drain_seconds: float
    # "trio_books/0.1.0 (Python 3.12)".
    user_agent: str

    @property
    def urls(self) -> list[str]:
        """The nodes' URLs, without credentials."""
        return [node.url for node in self.nodes]

    def replace(self, **changes: Any) -> ConnectionConfig:
        """A copy with *changes* (field names as keywords), e.g. a loader's own pool size."""
        return dataclasses.replace(self, **changes)


def split_userinfo(url: str) -> tuple[str, tuple[str, str | None] | None]:
    """*url* without its ``user:password@`` part, and that part percent-decoded.

    Returns:
        The URL without userinfo, and ``(user, password)`` if it had any
        (``password`` is ``None`` when the URL gives only a user name).
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        # No authority to speak of; still hide anything that looks like "user:pass@host".
        scheme, rest = "", url
    # The authority ends where the path, query or fragment begins (RFC 3986).
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return url, None
    user, colon, password = userinfo.partition(":")
    stripped = f"{scheme}{sep}{hostport}{tail}"
    return stripped, (unquote(user), unquote(password) if colon else None)


def take_credentials(urls: Sequence[str]) -> tuple[list[str], str | None]:
    """*urls* without userinfo, and the one ``user:password`` they carried, if any.

    Raises:
        ValueError: URLs carry different pairs, a user without a password, or an
            ``@`` past the host (a password's unencoded ``/``). The messages name
            URLs by position, never quoting one.
    """
    kept: list[str] = []
    pairs: set[str] = set()
    for number, url in enumerate(urls, 1):
        bare, userinfo = split_userinfo(url)
        if userinfo is not None:
            user, password = userinfo
            if not user or password is None:
                raise ValueError(f"es_urls: URL {number} needs 'user:password@', not a user alone")
            pairs.add(f"{user}:{password}")
        if "@" in bare:
            raise ValueError(
                f"es_urls: URL {number} has '@' after its host: "
                "percent-encode '/', '?', '#' and '@' in a password"
            )
        kept.append(bare)
    if len(pairs) > 1:
        raise ValueError("es_urls: the URLs carry different user:password pairs; give one")
    return kept, pairs.pop() if pairs else None


def redact_url(url: str) -> str:
    """*url* without any user name or password in it, the rest kept (for logs and errors)."""
    return split_userinfo(url)[0]


def parse_node(url: str) -> Node:
    """The :class:`Node` of a base URL such as ``https://es.example:9243/es/``.

    Raises:
        ValueError: not ``http``/``https``, no host, a bad port, a query or
            fragment, or credentials in the URL (strip them with :func:`split_userinfo`).
    """
    stripped, userinfo = split_userinfo(url)
    if userinfo is not None:
        # Never echo the URL here: it holds a password.
        raise ValueError(f"the node URL {stripped!r} carries credentials; give them apart")
    if "@" in url:
        # A password with an unencoded "/", "?" or "#" cuts the authority short and
        # leaves the rest in the path: never echo such a URL.
        raise ValueError("a node URL has '@' after its host: percent-encode a password's '/?#@'")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"the node URL {url!r} must start with http:// or https://")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError(f"the node URL {url!r} must not carry a query or fragment")
    if not parts.hostname:
        raise ValueError(f"the node URL {url!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"the node URL {url!r} has a bad port") from None
    return Node(
        scheme="https" if scheme == "https" else "http",
        host=parts.hostname,
        port=DEFAULT_PORTS[scheme] if port is None else port,
        prefix=parts.path.rstrip("/"),
    )


def decode_cloud_id(cloud_id: str) -> str:
    """The Elasticsearch URL of an Elastic Cloud id, decoded as Elastic's own clients do.

    A cloud id is ``name:base64(host$es_uuid$kibana_uuid)``; *host* may end in
    ``:port`` (else 443). The result is ``https://{es_uuid}.{host}:{port}``.

    Raises:
        ValueError: the id is not of that form.
    """
    # rpartition, as elastic-transport does: base64 has no ":", a deployment name might.
    _, _, data = cloud_id.strip().rpartition(":")
    malformed = "es_cloud_id is malformed: expected 'name:base64(host$es_uuid$kibana_uuid)'"
    try:
        padded = data + "=" * (-len(data) % 4)
        decoded = base64.b64decode(padded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(f"{malformed}: the part after ':' is not base64") from None
    host, _, rest = decoded.partition("$")
    es_uuid = rest.partition("$")[0]
    if not host or not es_uuid:
        raise ValueError(f"{malformed}: no host or no Elasticsearch id in it")
    port = 443
    if ":" in host:
        host, _, port_text = host.rpartition(":")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536 or not host:
            raise ValueError(f"{malformed}: bad port {port_text!r}")
        port = int(port_text)
    return f"https://{es_uuid}.{host}:{port}"


def _basic(user: str, password: str) -> Credentials:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return Credentials("basic", SecretStr(f"Basic {token}"), user=user)


def _credentials(settings: Settings) -> Credentials | None:
    # Settings have already checked that at most one kind is given.
    if settings.es_api_key is not None:
        key = settings.es_api_key.get_secret_value()
        # "id:key" is the pair Elasticsearch returns; the header wants it base64-encoded.
        if ":" in key:
            key = base64.b64encode(key.encode()).decode("ascii")
        return Credentials("api_key", SecretStr(f"ApiKey {key}"))
    if settings.es_bearer_auth is not None:
        return Credentials(
            "bearer", SecretStr(f"Bearer {settings.es_bearer_auth.get_secret_value()}")
        )
    if settings.es_username is not None and settings.es_password is not None:
        return _basic(settings.es_username, settings.es_password.get_secret_value())
    if settings.es_url_credentials is not None:
        user, _, password = settings.es_url_credentials.get_secret_value().partition(":")
        return _basic(user, password)
    return None


def _package_version() -> str:
    try:
        return importlib.metadata.version("trio_books")
    except importlib.metadata.PackageNotFoundError:
        # Run from a source tree that was never installed.
        from trio_books import __version__

        return __version__


def connection_config(settings: Settings) -> ConnectionConfig:
    """The connection configuration the *settings* describe: the one place that reads ``es_*``.

    A cloud id has already become ``settings.es_urls`` (see
    :class:`~trio_books.settings.Settings`), so the nodes always come from there.
    """
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    compress = settings.es_http_compress
    return ConnectionConfig(
        nodes=tuple(parse_node(url) for url in settings.es_urls),
        tls=TLSOptions(
            ca_certs=settings.es_ca_certs,
            verify_certs=settings.es_verify_certs,
            assert_fingerprint=settings.es_ssl_assert_fingerprint,
            client_cert=settings.es_client_cert,
            client_key=settings.es_client_key,
        ),
        credentials=_credentials(settings),
        # Elastic Cloud bills traffic, so its clients compress by default.
        http_compress=settings.es_cloud_id is not None if compress is None else compress,
        max_response_bytes=settings.es_max_response_bytes,
        timeout=settings.es_timeout,
        retries=settings.es_retries,
        transport=settings.es_transport,
        pool_size=settings.es_pool_size,
        pool_queue=settings.es_pool_queue,
        max_connections=settings.es_max_connections,
        drain_seconds=settings.es_drain_seconds,
        user_agent=f"trio_books/{_package_version()} (Python {python})",
    )


def connection_warnings(config: ConnectionConfig) -> list[str]:
    """What weakens this configuration's security, for the start-up log and ``/readyz``."""
    warnings: list[str] = []
    secure = [node for node in config.nodes if node.scheme == "https"]
    if secure and not config.tls.verify_certs and config.tls.assert_fingerprint is None:
        warnings.append("Elasticsearch's TLS certificates are not verified (es_verify_certs=false)")
    if config.credentials is not None and len(secure) < len(config.nodes):
        warnings.append("credentials go to an http:// node in cleartext")
    return warnings


def plain_config(urls: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT) -> ConnectionConfig:
    """A configuration for unsecured nodes at *urls* (tests, and tools given a URL)."""
    return ConnectionConfig(
        nodes=tuple(parse_node(url) for url in urls),
        tls=TLSOptions(),
        credentials=None,
        http_compress=False,
        max_response_bytes=MAX_RESPONSE_BYTES,
        timeout=timeout,
        retries=DEFAULT_RETRIES,
        transport="trio_books",
        pool_size=32,
        pool_queue=256,
        max_connections=64,
        drain_seconds=DRAIN_SECONDS,
        user_agent="trio_books",
    )
