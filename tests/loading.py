"""Helpers shared by the loader's tests: writing small catalogues, loading them, reading the alias."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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


async def run_cli(*args: str, es_url: str, cwd: Path) -> trio.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "trio_books", *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=str(cwd),
        env={**os.environ, "TRIO_BOOKS_ES_URLS": es_url},
    )


@contextlib.asynccontextmanager
async def nested_limit(es: Elasticsearch, alias: str, limit: int) -> AsyncIterator[None]:
    """New versions of *alias* allow *limit* nested objects (authors and tags) a document.

    Elasticsearch then refuses a book with more, valid as the book is: an index
    template, as an operator would set one, makes the refusal for real.
    """
    template = f"{alias}-nested-limit"
    body = {
        "index_patterns": [f"{alias}-*"],
        "priority": 500,
        "template": {"settings": {"index.mapping.nested_objects.limit": limit}},
    }
    await es.request("PUT", f"/_index_template/{template}", body=body)
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):
            await es.request("DELETE", f"/_index_template/{template}")
