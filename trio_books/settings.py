"""Service settings, read once from the environment (prefix ``TRIO_BOOKS_``) and ``.env``.

Settings are built by :func:`load_settings` and passed down explicitly; nothing
reads the environment at import time.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    # The httpx transport under the client: trio_books' own pools, or httpx's stock one.
    es_transport: Literal["trio_books", "stock"] = "trio_books"
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
    # Whether ?trace=1 may add the task timeline to answers.
    allow_trace: bool = True

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
