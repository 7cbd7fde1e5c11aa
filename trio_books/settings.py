"""Service settings, read once from the environment (prefix ``TRIO_BOOKS_``) and ``.env``.

Settings are built by :func:`load_settings` and passed down explicitly; nothing
reads the environment at import time.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from trio_books.core.cursor import MIN_KEY_BYTES
from trio_books.core.query import MAX_QUERY_LENGTH, MAX_RESULT_WINDOW, MAX_SIZE, MAX_TAGS, QueryCaps
from trio_books.errors import UsageError
from trio_books.es.connection import decode_cloud_id, parse_node, take_credentials

Preset = Literal["development", "production"]

# What the production preset turns off unless the setting is given explicitly.
PRODUCTION_DEFAULTS: dict[str, object] = {"docs": False, "allow_trace": False}

MIB = 1024 * 1024
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything the service can be told, with safe defaults.

    List settings are comma-separated in the environment, for example
    ``TRIO_BOOKS_ES_URLS=http://127.0.0.1:9200,http://127.0.0.1:9201``.
    """

    model_config = SettingsConfigDict(
        env_prefix="TRIO_BOOKS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # A validation error would otherwise quote its input, passwords included.
        hide_input_in_errors=True,
    )

    es_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:9200"], min_length=1
    )
    index: str = Field(default="books", pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=0, le=65535)
    api_prefix: str = Field(default="/api/v1", pattern=r"^(/[A-Za-z0-9_\-.]+)*$")
    # The path prefix a reverse proxy mounts the service under (e.g. /books): served
    # with or without it in the path (see trio_books.api.proxying).
    root_path: str = Field(default="", pattern=r"^(/[A-Za-z0-9_\-.]+)*$")
    # How many reverse proxies in front append to X-Forwarded-For / Forwarded: the
    # client's address is read from there. 0: the headers are ignored (never trusted).
    trusted_proxy_hops: int = Field(default=0, ge=0, le=10)
    # No cross-origin access unless configured; "*" allows any origin, never with credentials.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Seconds for one Elasticsearch call (connect, write, read and pool wait).
    es_timeout: float = Field(default=5.0, gt=0, le=300)
    # One connection pool per app lifetime; these bound it.
    es_max_connections: int = Field(default=64, ge=1, le=10_000)
    # The httpx transport under the client: trio_books' own pools; httpx's stock
    # transport as it ships (one httpcore pool); or several httpcore pools used in
    # turn ("sharded", the mitigation that came before trio_books' own). The last
    # two are baselines for the benchmark.
    es_transport: Literal["trio_books", "stock", "sharded"] = "trio_books"
    # trio_books transport: connections per node, and requests that may wait for one;
    # the next is shed with a 503 at once.
    es_pool_size: int = Field(default=32, ge=1, le=10_000)
    es_pool_queue: int = Field(default=256, ge=0, le=100_000)
    # Seconds a call cut by a search's deadline may go on being read, so that its
    # connection is kept rather than closed; 0 closes it at once.
    es_drain_seconds: float = Field(default=2.0, ge=0, le=60)
    # How many times a failed call is tried again on another node.
    es_retries: int = Field(default=2, ge=0, le=10)
    # Hedged hits calls: after hedge_delay_ms (default: the observed p95 of the
    # hits call) without an answer, the same call goes to another node too.
    hedge_hits: bool = False
    hedge_delay_ms: float | None = Field(default=None, gt=0, le=60_000)
    # Freeze start-up objects out of the cyclic GC's sight when serving (see gc_tuning).
    gc_tuning: bool = True
    # How many buckets each facet returns.
    facet_size: int = Field(default=20, ge=1, le=1000)
    # Seconds one search may take in all; a client's ?timeout= may only shorten it.
    search_deadline: float = Field(default=2.0, gt=0, le=60)
    # Seconds one completion may take in all (it answers each key typed: kept short).
    complete_deadline: float = Field(default=0.3, gt=0, le=60)
    # A free-text search finding fewer books than this also asks for suggestions.
    suggest_below: int = Field(default=3, ge=0, le=10_000)
    # "production" turns off /docs and ?trace=1 unless they are set explicitly.
    preset: Preset = "development"
    # Whether ?trace=1 may add the task timeline to answers.
    allow_trace: bool = True
    # Whether /docs serves the interactive Swagger page (it loads scripts from a CDN).
    docs: bool = True
    # Whether /openapi.json is served (kept on in production: it is what clients generate from).
    openapi: bool = True
    # Whether GET /metrics serves the service's figures in Prometheus's text format.
    metrics: bool = True
    # Serve /metrics on this port (same host) instead of the public one; with
    # `serve --workers N`, worker i serves its own on METRICS_PORT + i.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Seals paging cursors (HMAC-SHA256). Unset: a random key each start, which every
    # worker of one `serve` shares; instances behind one load balancer need one key
    # set for all, or a cursor from one is refused by another.
    cursor_key: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)), min_length=MIN_KEY_BYTES
    )

    # ---- Elasticsearch security, named after elastic-transport's options.
    # An Elastic Cloud deployment's id: it becomes es_urls, so the two exclude each other.
    es_cloud_id: str | None = None
    # One kind of credentials at most: an API key (encoded, or "id:key"), a user name
    # and password, a bearer token, or "user:password@" in es_urls.
    es_api_key: SecretStr | None = Field(default=None, min_length=1)
    es_username: str | None = Field(default=None, min_length=1)
    es_password: SecretStr | None = None
    es_bearer_auth: SecretStr | None = Field(default=None, min_length=1)
    # "user:password" taken out of es_urls (so that no URL, repr or log line holds it);
    # only ever set from the URLs, never from outside.
    es_url_credentials: SecretStr | None = None
    # A PEM file of the CAs to trust instead of the system's.
    es_ca_certs: str | None = None
    # false turns certificate checks off (a throwaway cluster's self-signed certificate).
    es_verify_certs: bool = True
    # SHA-256 of a certificate in the node's chain (Elasticsearch prints its CA's on first
    # start), hex, colons allowed. As in elastic-transport, a pin replaces CA verification:
    # it works alone, and with it es_ca_certs and es_verify_certs play no part.
    es_ssl_assert_fingerprint: str | None = None
    # A client certificate (PEM), and its key when the certificate file does not hold it.
    es_client_cert: str | None = None
    es_client_key: str | None = None
    # gzip request bodies and accept gzip answers; unset: on with es_cloud_id, else off.
    es_http_compress: bool | None = None
    # A larger answer from Elasticsearch is refused rather than held in memory.
    es_max_response_bytes: int = Field(default=32 * MIB, ge=1024, le=1024 * MIB)

    # ---- caps on what one request may ask; each tightens the documented ceiling.
    max_query_length: int = Field(default=MAX_QUERY_LENGTH, ge=1, le=MAX_QUERY_LENGTH)
    max_tags: int = Field(default=MAX_TAGS, ge=1, le=MAX_TAGS)
    max_page_size: int = Field(default=MAX_SIZE, ge=1, le=MAX_SIZE)
    # The deepest result a client may page to: page × size.
    max_result_window: int = Field(default=MAX_RESULT_WINDOW, ge=1, le=MAX_RESULT_WINDOW)
    # Bytes of path plus query string (414 past it).
    max_url_length: int = Field(default=4096, ge=256, le=65_536)
    # Bytes of all header names and values, and how many headers (431 past either).
    max_header_bytes: int = Field(default=8192, ge=1024, le=65_536)
    max_header_count: int = Field(default=64, ge=8, le=1000)
    # Bytes of request body (413 past it); the API is GET-only and reads none.
    max_body_bytes: int = Field(default=1024, ge=0, le=1_048_576)

    # ---- admission control: searches and book look-ups in progress per worker.
    max_in_flight: int = Field(default=32, ge=1, le=10_000)
    # How many more may wait for a slot, and for how long, before a 503.
    max_queued: int = Field(default=32, ge=0, le=100_000)
    queue_wait: float = Field(default=0.1, ge=0, le=10)
    # Seconds a shed client is told to wait (Retry-After).
    retry_after: int = Field(default=1, ge=1, le=3600)

    # ---- Hypercorn's connection timeouts and queue (seconds).
    # An idle keep-alive connection, or one still sending its request head, is closed after this.
    keep_alive_timeout: float = Field(default=5.0, gt=0, le=3600)
    # One read from a client may wait this long; longer than any search may take.
    read_timeout: float = Field(default=10.0, gt=0, le=3600)
    # On SIGTERM, in-flight requests have this long to finish.
    graceful_timeout: float = Field(default=10.0, ge=0, le=3600)
    # Connections the kernel queues before Hypercorn accepts them.
    backlog: int = Field(default=1024, ge=1, le=65_535)
    # The Trio build's connection shell around Hypercorn's protocol: the
    # project's lean one (plain-text HTTP) or Hypercorn's own (which also serves TLS).
    server_shell: Literal["lean", "hypercorn"] = "lean"

    # ---- logs: one JSON object per line.
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # One line per request with status and duration.
    access_log: bool = True
    # Characters of user input (paths, query strings, ids) a log line may carry.
    log_input_prefix: int = Field(default=80, ge=0, le=2000)

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # Values given explicitly (environment, .env or keyword) win over the preset.
        if str(data.get("preset", "")).lower() == "production":
            data = {**PRODUCTION_DEFAULTS, **data}
        # A read waits while a search runs: unless set, it outlasts a longer deadline.
        deadlines = [data[key] for key in ("search_deadline", "complete_deadline") if key in data]
        if "read_timeout" not in data and deadlines:
            # A malformed deadline is left for the field's own validation to report.
            with contextlib.suppress(TypeError, ValueError):
                longest = max(float(deadline) for deadline in deadlines)
                data = {**data, "read_timeout": max(10.0, longest + 5)}
        return data

    @model_validator(mode="before")
    @classmethod
    def _nodes_without_secrets(cls, data: Any) -> Any:
        """Turn a cloud id into es_urls, and move userinfo out of es_urls."""
        if not isinstance(data, dict):
            return data
        # Derived from the URLs alone: a value from outside is dropped.
        data = {key: value for key, value in data.items() if key != "es_url_credentials"}
        cloud_id = data.get("es_cloud_id")
        if isinstance(cloud_id, str):
            # Any es_urls here was given (environment, .env or keyword), not defaulted.
            if "es_urls" in data:
                raise ValueError("es_cloud_id and es_urls exclude each other: give one of them")
            data["es_urls"] = [decode_cloud_id(cloud_id)]
        urls = _split_commas(data.get("es_urls"))
        # Anything but a list of strings is left for the field's own validation.
        if isinstance(urls, list) and all(isinstance(url, str) for url in urls):
            data["es_urls"], pair = take_credentials(urls)
            if pair is not None:
                data["es_url_credentials"] = pair
        return data

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> Settings:
        if (self.es_username is None) != (self.es_password is None):
            raise ValueError("es_username and es_password go together: give both or neither")
        if self.es_username is not None and ":" in self.es_username:
            raise ValueError(
                "es_username must not contain ':' (basic auth splits on the first one)"
            )
        given = [
            name
            for name, value in (
                ("es_api_key", self.es_api_key),
                ("es_username/es_password", self.es_username),
                ("es_bearer_auth", self.es_bearer_auth),
                ("user:password in es_urls", self.es_url_credentials),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"give one kind of Elasticsearch credentials, not {' and '.join(given)}"
            )
        if self.es_client_key is not None and self.es_client_cert is None:
            raise ValueError("es_client_key needs es_client_cert")
        return self

    @model_validator(mode="after")
    def _timeouts_in_order(self) -> Settings:
        if self.read_timeout <= self.complete_deadline:
            raise ValueError(
                f"read_timeout ({self.read_timeout} s) must be longer than "
                f"complete_deadline ({self.complete_deadline} s): a read waits while it runs"
            )
        if self.read_timeout <= self.search_deadline:
            raise ValueError(
                f"read_timeout ({self.read_timeout} s) must be longer than "
                f"search_deadline ({self.search_deadline} s): a read waits while a search runs"
            )
        return self

    def query_caps(self) -> QueryCaps:
        """The caps a search's parameters are checked against."""
        return QueryCaps(
            max_query_length=self.max_query_length,
            max_tags=self.max_tags,
            max_size=self.max_page_size,
            max_result_window=self.max_result_window,
        )

    # The loader: how many _bulk requests are in flight at once, and how big each grows.
    load_senders: int = Field(default=4, ge=1, le=64)
    load_chunk_docs: int = Field(default=1000, ge=1, le=100_000)
    load_chunk_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    # Retries of work Elasticsearch pushed back (429) or failed (5xx, no answer).
    load_max_retries: int = Field(default=8, ge=0, le=100)
    load_backoff_first: float = Field(default=0.1, gt=0, le=60)
    load_backoff_cap: float = Field(default=10.0, gt=0, le=600)
    # Seconds for one _bulk request: a big chunk on a busy node takes a while.
    load_timeout: float = Field(default=120.0, gt=0, le=3600)
    # Replicas of a loaded version once it is loaded (none while loading, for speed);
    # unset: one when the cluster has more than one data node, else none.
    load_replicas: int | None = Field(default=None, ge=0, le=10)
    # The largest record a catalogue file may hold (bytes of its text); longer ones
    # are rejected unread, so one bad line cannot take the loader's memory.
    load_max_record_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)

    @field_validator("api_prefix", "root_path")
    @classmethod
    def _prefix_without_dot_segments(cls, prefix: str, info: ValidationInfo) -> str:
        # Clients remove "." and ".." from a path before sending it (RFC 3986
        # §5.2.4): routes under such a prefix could never be reached.
        if any(segment in {".", ".."} for segment in prefix.split("/")):
            raise ValueError(f"{info.field_name} must not hold '.' or '..' segments")
        return prefix

    @field_validator("es_urls", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("es_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        # Userinfo is gone by now (_nodes_without_secrets): these URLs may be quoted.
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"Elasticsearch URL must start with http:// or https://: {url!r}")
            parse_node(url)  # its ValueError names the URL, without credentials
        return [url.rstrip("/") for url in urls]

    @field_validator("es_ca_certs", "es_client_cert", "es_client_key")
    @classmethod
    def _existing_file(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path is not None and not Path(path).is_file():
            raise ValueError(f"{info.field_name}: no such file: {path!r}")
        return path

    @field_validator("es_ssl_assert_fingerprint")
    @classmethod
    def _sha256_hex(cls, fingerprint: str | None) -> str | None:
        if fingerprint is None:
            return None
        normal = fingerprint.replace(":", "").strip().lower()
        if not SHA256_HEX.fullmatch(normal):
            raise ValueError(
                "es_ssl_assert_fingerprint must be a SHA-256 fingerprint: "
                "64 hex digits, colons allowed"
            )
        return normal


def invalid_settings(error: ValueError) -> UsageError:
    """The one-line usage error for settings that failed validation.

    It names each invalid setting, its environment variable and the rule it
    broke; never the value given, which may be a secret.
    """
    if not isinstance(error, ValidationError):
        return UsageError(f"invalid settings: {str(error).splitlines()[0]}")
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in item["loc"])
        where = f"{field} (TRIO_BOOKS_{field.upper()}): " if field else ""
        parts.append(where + item["msg"].removeprefix("Value error, "))
    return UsageError(f"invalid settings: {'; '.join(parts)}")


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and ``.env``; keyword overrides win."""
    return Settings(**overrides)  # type: ignore[arg-type]
