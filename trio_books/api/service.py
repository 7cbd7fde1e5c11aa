"""What the routes ask of Elasticsearch, independent of the event loop.

The one loop-specific piece, running a search's branches together, comes in as
a :class:`FanOut`: the Trio build passes a nursery, the asyncio build a
``TaskGroup``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Protocol

from trio_books.core.books import Book, document_to_book
from trio_books.core.mapping import index_body
from trio_books.core.query import SearchQuery, search_requests
from trio_books.core.results import SearchResponse, parse_search
from trio_books.core.timing import Span
from trio_books.errors import ElasticsearchUnavailable, NotFound
from trio_books.es.client import Elasticsearch
from trio_books.settings import Settings

Answer = dict[str, Any]
Branch = Callable[[], Awaitable[Answer]]
# When each branch ran: its start (a time.perf_counter() reading) and duration.
Spans = dict[str, Span]

READY_TIME_LIMIT = 2.0


class FanOut(Protocol):
    """Run every branch concurrently; return their answers and :class:`Span` by name.

    If any branch fails, the others are cancelled and the most telling of our
    errors is raised (see :func:`trio_books.errors.most_severe`).
    """

    def __call__(
        self, branches: Mapping[str, Branch]
    ) -> Awaitable[tuple[dict[str, Answer], Spans]]: ...


class SearchService:
    """The service's operations over one Elasticsearch client."""

    def __init__(self, es: Elasticsearch, settings: Settings, fan_out: FanOut) -> None:
        self.es = es
        self.settings = settings
        self.fan_out = fan_out

    async def search(self, query: SearchQuery) -> tuple[SearchResponse, Spans]:
        """One search: the hits and every facet, fetched concurrently, and when each ran."""
        requests = search_requests(query, self.settings.facet_size)
        branches = {
            name: partial(self.es.search, self.settings.index, body)
            for name, body in requests.items()
        }
        answers, spans = await self.fan_out(branches)
        return parse_search(answers), spans

    async def book(self, book_id: int) -> Book:
        source = await self.es.get_source(self.settings.index, str(book_id))
        if source is None:
            raise NotFound(f"no book with id {book_id}")
        return document_to_book(source)

    async def ready(self) -> str:
        """The cluster's health status; raises when Elasticsearch cannot serve searches."""
        health = await self.es.cluster_health(
            time_limit=min(READY_TIME_LIMIT, self.settings.es_timeout)
        )
        status = str(health.get("status"))
        if status not in {"green", "yellow"}:
            raise ElasticsearchUnavailable(f"Elasticsearch cluster health is {status}")
        return status

    async def ensure_index(self) -> bool:
        """Create the index (with the book mapping) if neither it nor an alias of that name exists."""
        if await self.es.index_exists(self.settings.index):
            return False
        await self.es.create_index(self.settings.index, index_body())
        return True
