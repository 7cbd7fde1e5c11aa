"""The benchmark's catalogue: at least 100,000 books of the project's synthetic catalogue.

The same deterministic generator as ``python -m trio_books generate`` (and the
same seed), so every run and every target searches the same books.
"""

from __future__ import annotations

import sys

from trio_books.core.books import Book
from trio_books.core.bulk import bulk_body
from trio_books.core.mapping import index_body
from trio_books.core.synthetic import synthetic_books
from trio_books.es.client import Elasticsearch
from trio_books.es.connection import ConnectionConfig
from trio_books.es.opening import open_elasticsearch

BULK_BATCH = 5_000


async def ensure_bench_catalogue(config: ConnectionConfig, index: str, size: int) -> int:
    """Make sure *index* holds at least *size* books; load them if not. Returns the count."""
    config = config.replace(pool_size=4, max_connections=4, timeout=120.0)
    async with open_elasticsearch(config, "trio") as es:
        if await es.index_exists(index):
            count = await _count(es, index)
            if count >= size:
                return count
            await es.delete_index(index)  # a partial load of ours: start again
        print(f"bench: loading {size:,} generated books into {index!r}", file=sys.stderr)
        await es.create_index(index, index_body())
        batch: list[Book] = []
        for book in synthetic_books(size):
            batch.append(book)
            if len(batch) == BULK_BATCH:
                await _bulk(es, index, batch)
                batch = []
        if batch:
            await _bulk(es, index, batch)
        await es.refresh(index)
        # One segment-merge pass, so every target later searches the same settled index.
        await es.request("POST", f"/{index}/_forcemerge", params={"max_num_segments": "1"})
        return await _count(es, index)


async def _bulk(es: Elasticsearch, index: str, books: list[Book]) -> None:
    result = await es.bulk(bulk_body(index, books))
    if result.get("errors"):
        raise RuntimeError(f"bulk load into {index!r} reported errors")


async def _count(es: Elasticsearch, index: str) -> int:
    found = await es.request("GET", f"/{index}/_count")
    return int(found["count"])
