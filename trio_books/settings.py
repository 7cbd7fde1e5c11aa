"""Service settings, read once from the environment (prefix ``TRIO_BOOKS_``) and ``.env``.

Settings are built by :func:`load_settings` and passed down explicitly; nothing
reads the environment at import time.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from trio_books.core.query import MAX_QUERY_LENGTH, MAX_RESULT_WINDOW, MAX_SIZE, MAX_TAGS, QueryCaps

Preset = Literal["development", "production"]

# What the production preset turns off unless the setting is given explicitly.
PRODUCTION_DEFAULTS: dict[str, object] = {"docs": False, "allow_trace": False}


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
    )

    es_urls: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:9200"], min_length=1
    )
    index: str = Field(default="books", pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=0, le=65535)
    api_prefix: str = Field(default="/api/v1", pattern=r"^(/[A-Za-z0-9_\-.]+)*$")
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
        if "read_timeout" not in data and "search_deadline" in data:
            # A malformed deadline is left for the field's own validation to report.
            with contextlib.suppress(TypeError, ValueError):
                data = {**data, "read_timeout": max(10.0, float(data["search_deadline"]) + 5)}
        return data

    @model_validator(mode="after")
    def _timeouts_in_order(self) -> Settings:
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

    @field_validator("es_urls", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("es_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"Elasticsearch URL must start with http:// or https://: {url!r}")
        return [url.rstrip("/") for url in urls]


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment and ``.env``; keyword overrides win."""
    return Settings(**overrides)  # type: ignore[arg-type]
