"""Service settings, read once from the environment (prefix ``TRIO_BOOKS_``) and ``.env``.

Settings are built by :func:`load_settings` and passed down explicitly; nothing
reads the environment at import time.
"""

from __future__ import annotations

from typing import Annotated

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
    # How many buckets each facet returns.
    facet_size: int = Field(default=20, ge=1, le=1000)
    # Seconds one search may take in all; a client's ?timeout= may only shorten it.
    search_deadline: float = Field(default=2.0, gt=0, le=60)
    # A free-text search finding fewer books than this also asks for suggestions.
    suggest_below: int = Field(default=3, ge=0, le=10_000)
    # Whether ?trace=1 may add the task timeline to answers.
    allow_trace: bool = True

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
