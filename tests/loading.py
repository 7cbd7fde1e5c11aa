"""Helpers shared by the loader's tests: writing small catalogues, loading them, reading the alias."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

from trio_books.es import aliases
from trio_books.es.client import Elasticsearch
from trio_books.load.pipeline import LoadOptions, LoadReport, load_catalogue
from trio_books.load.report import RejectsLog
from trio_books.load.sources import CatalogueReader, SyntheticReader, open_catalogue_file

GOODBOOKS_HEADER = (
    "book_id,goodreads_book_id,best_book_id,work_id,books_count,isbn,isbn13,authors,"
    "original_publication_year,original_title,title,language_code,average_rating,"
    "ratings_count,work_ratings_count,work_text_reviews_count,ratings_1,ratings_2,"
    "ratings_3,ratings_4,ratings_5,image_url,small_image_url"
)


def write_ndjson(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return path


def options(alias: str, **overrides: Any) -> LoadOptions:
    return LoadOptions(alias=alias, **overrides)


async def load_files(
    es: Elasticsearch, alias: str, *paths: Path, **overrides: Any
) -> tuple[LoadReport, RejectsLog, io.StringIO]:
    files = [open_catalogue_file(path, None) for path in paths]
    console = io.StringIO()
    # A test may load twice in one folder: its rejects file is replaced.
    rejects = RejectsLog(paths[0].parent / "rejects.ndjson", console, overwrite=True)
    report = await load_catalogue(es, CatalogueReader(files), options(alias, **overrides), rejects)
    return report, rejects, console


async def load_synthetic(
    es: Elasticsearch, alias: str, count: int, seed: int = 1, **overrides: Any
) -> LoadReport:
    rejects = RejectsLog(None, io.StringIO())
    reader = SyntheticReader(count, seed)
    return await load_catalogue(es, reader, options(alias, **overrides), rejects)


async def live_count(es: Elasticsearch, alias: str) -> int:
    answer = await es.request("GET", f"/{alias}/_count")
    return int(answer["count"])


async def targets(es: Elasticsearch, alias: str) -> list[str]:
    return (await aliases.alias_state(es, alias)).targets


async def versions(es: Elasticsearch, alias: str) -> list[str]:
    found = await es.request("GET", f"/_resolve/index/{alias}-*")
    return sorted(entry["name"] for entry in found["indices"])


async def indices(es: Elasticsearch, prefix: str) -> list[str]:
    """Every index whose name starts with *prefix*, hidden or not, whatever made it."""
    found = await es.request(
        "GET", f"/{prefix}*", params={"expand_wildcards": "all", "filter_path": "*.settings"}
    )
    return sorted(found or {})


async def run_cli(
    *args: str, es_url: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "trio_books", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=str(cwd),
        env={**os.environ, "TRIO_BOOKS_ES_URLS": es_url, **(env or {})},
    )


@contextlib.asynccontextmanager
async def version_settings(
    es: Elasticsearch, alias: str, settings: Mapping[str, Any]
) -> AsyncIterator[None]:
    """New versions of *alias* are made with *settings*, by an index template as an operator sets one."""
    template = f"{alias}-settings"
    body = {"index_patterns": [f"{alias}-*"], "priority": 500, "template": {"settings": settings}}
    await es.request("PUT", f"/_index_template/{template}", body=body)
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):
            await es.request("DELETE", f"/_index_template/{template}")


def nested_limit(
    es: Elasticsearch, alias: str, limit: int
) -> contextlib.AbstractAsyncContextManager[None]:
    """New versions of *alias* allow *limit* nested objects (authors and tags) a document.

    Elasticsearch then refuses a book with more, valid as the book is.
    """
    return version_settings(es, alias, {"index.mapping.nested_objects.limit": limit})


def flood_stage_block(
    es: Elasticsearch, alias: str
) -> contextlib.AbstractAsyncContextManager[None]:
    """New versions of *alias* carry the block a disk past its flood stage puts on indices.

    Elasticsearch then refuses every document written to them with 429, item by
    item, as it does until an operator frees disk space: push-back that never ends.
    """
    return version_settings(es, alias, {"index.blocks.read_only_allow_delete": True})


@contextlib.asynccontextmanager
async def inflight_limit(es: Elasticsearch, limit: str) -> AsyncIterator[None]:
    """The node refuses any request whose body passes *limit* (counted twice) as a whole, with 429.

    Its in-flight requests circuit breaker trips before the request is read, as
    under memory pressure: the whole ``_bulk`` request is refused, not its items.
    The setting is the cluster's: it is lifted when the block is left.
    """
    setting = "network.breaker.inflight_requests.limit"
    await es.request("PUT", "/_cluster/settings", body={"persistent": {setting: limit}})
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):
            await es.request("PUT", "/_cluster/settings", body={"persistent": {setting: None}})


class HoldingTransport(httpx.AsyncBaseTransport):
    """Passes every call on to *inner*, but holds the first ``_bulk`` request until released.

    The test sees that request as it was sent (``held``) and acts while it is in
    flight, as Elasticsearch's write queue holds a request it has not taken up:
    then it sets ``release``, or cancels the caller.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.held: httpx.Request | None = None
        self.arrived = trio.Event()
        self.release = trio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.held is None and request.url.path.endswith("/_bulk"):
            self.held = request
            self.arrived.set()
            await self.release.wait()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
