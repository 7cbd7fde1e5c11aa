"""A demo catalogue for a fresh machine, so the first search finds something.

Loop-neutral (httpx and the pure core only), so the serve path of either
build can call :func:`ensure_demo_catalogue`. It loads one request at a time:
ten thousand books take a few seconds, and there is nothing to overlap with.
"""

from __future__ import annotations

from typing import Any

from trio_books.core.bulk import (
    BULK_FILTER_PATH,
    Chunk,
    ChunkBuilder,
    bulk_item,
    read_bulk_answer,
)
from trio_books.core.synthetic import DEFAULT_SEED, synthetic_books
from trio_books.errors import ElasticsearchError
from trio_books.es import aliases
from trio_books.es.client import Elasticsearch

DEMO_BOOKS = 10_000


async def book_count(es: Elasticsearch, name: str) -> int | None:
    """Documents behind *name* (an alias or an index); ``None`` when it does not exist."""
    answer: dict[str, Any] | None = await es.request("GET", f"/{name}/_count", allow_404=True)
    return None if answer is None else int(answer["count"])


async def ensure_demo_catalogue(
    es: Elasticsearch,
    alias: str,
    count: int = DEMO_BOOKS,
    seed: int = DEFAULT_SEED,
    *,
    chunk_docs: int = 1000,
) -> int:
    """Load the synthetic catalogue behind *alias* unless it already holds books.

    The books go to a new version which becomes live only once complete, as
    with ``python -m trio_books load``; an empty index named *alias* (made by an
    "ensure index" step) is replaced in the same atomic swap.

    Returns:
        How many books were loaded: 0 when *alias* already had some.

    Raises:
        ElasticsearchError: a book was refused or the count check failed; the
            new version is deleted and *alias* left as it was.
    """
    if await book_count(es, alias):
        return 0
    index = await aliases.create_version(es, alias)
    try:
        builder = ChunkBuilder(chunk_docs, 5 * 1024 * 1024)
        for number, book in enumerate(synthetic_books(count, seed), start=1):
            for chunk in builder.add(bulk_item(book, "demo", number)):
                await _send(es, index, chunk)
        if (last := builder.flush()) is not None:
            await _send(es, index, last)
        loaded = await aliases.count_version(es, index)
        if loaded != count:
            raise ElasticsearchError(f"the demo catalogue holds {loaded} books, not {count}")
        # An index of that name holds no books (counted above): replacing it loses nothing.
        await aliases.swap_alias(es, alias, index, replace_index=True)
    except Exception:
        # Not on cancellation: a loop-neutral function cannot shield the cleanup.
        # A version left behind that way is never live, and a later load prunes it.
        await aliases.discard_version(es, index)
        raise
    await aliases.prune_versions(es, alias, index)
    return count


async def _send(es: Elasticsearch, index: str, chunk: Chunk) -> None:
    status, content = await es.post_bulk(index, chunk.body(), filter_path=BULK_FILTER_PATH)
    outcome = read_bulk_answer(chunk, status, content)
    if outcome.failed or outcome.retry is not None:
        problem = outcome.failed[0].reason if outcome.failed else outcome.retry_reason
        raise ElasticsearchError(f"the demo catalogue did not load: {problem}")
